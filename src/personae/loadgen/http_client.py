"""Turns over the OpenAI-compatible HTTP API (``POST /v1/chat/completions``), streamed as
server-sent events or not, with httpx.

Only the new message is sent: Personae keeps the history itself, and continues the user's
latest conversation with the character, so the context grows as a user keeps talking.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from personae.loadgen.outcome import TurnOutcome


class HttpTurns:
    def __init__(
        self,
        base_url: str,
        *,
        stream: bool,
        api_key: str | None,
        max_tokens: int | None,
        connections: int,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.stream = stream
        self.max_tokens = max_tokens
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/v1",
            headers=headers,
            timeout=httpx.Timeout(None),  # the runner bounds each turn as a whole
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def characters(self) -> list[str]:
        response = await self.client.get("/models", timeout=30)
        response.raise_for_status()
        return [str(model["id"]) for model in response.json()["data"]]

    def _body(self, user: str, character: str, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": character,
            "messages": [{"role": "user", "content": text}],
            "user": user,
            "stream": self.stream,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    async def turn(self, user: str, character: str, text: str) -> TurnOutcome:
        outcome = TurnOutcome(sent_ns=time.time_ns())
        body = self._body(user, character, text)
        try:
            if self.stream:
                await self._streamed(body, outcome)
            else:
                await self._whole(body, outcome)
        except httpx.ConnectError:
            outcome.error = "connect_failed"
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            outcome.error = "disconnected"
        except httpx.TimeoutException:
            outcome.error = "timeout"
        except (ValueError, KeyError, IndexError, TypeError):
            outcome.error = "bad_response"
        return outcome

    async def _whole(self, body: dict[str, Any], outcome: TurnOutcome) -> None:
        response = await self.client.post("/chat/completions", json=body)
        if response.status_code != 200:
            outcome.error = f"http_{response.status_code}"
            return
        content = response.json()["choices"][0]["message"]["content"] or ""
        outcome.done_ns = outcome.first_content_ns = time.time_ns()
        outcome.text = content
        outcome.deltas = 1

    async def _streamed(self, body: dict[str, Any], outcome: TurnOutcome) -> None:
        pieces: list[str] = []
        async with self.client.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                outcome.error = f"http_{response.status_code}"
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    outcome.done_ns = time.time_ns()
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    outcome.error = "stream_error"
                    return
                choices = chunk.get("choices") or []
                content = choices[0].get("delta", {}).get("content") if choices else None
                if content:
                    if outcome.first_content_ns is None:
                        outcome.first_content_ns = time.time_ns()
                    outcome.deltas += 1
                    pieces.append(content)
        if outcome.done_ns is None:
            outcome.error = "disconnected"  # the stream ended without [DONE]
        outcome.text = "".join(pieces)

    async def forget(self, user: str) -> None:
        return None

    async def aclose(self) -> None:
        await self.client.aclose()
