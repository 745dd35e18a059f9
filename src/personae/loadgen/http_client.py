"""Turns over the OpenAI-compatible HTTP API (``POST /v1/chat/completions``), streamed as
server-sent events or not, with aiohttp.

Not httpx: its pool costs Python work per request that grows with the connections open, and
above ~180 turns/s (with hundreds in flight) the load generator itself used a whole core and
fell behind its schedule even against the fake backend, measuring itself instead of the server
(6 ms of CPU per turn; docs/benchmarks.md, "The load generator's own ceiling").

Only the new message is sent: Personae keeps the history itself, and continues the user's
latest conversation with the character, so the context grows as a user keeps talking.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

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
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.stream = stream
        self.max_tokens = max_tokens
        self.base_url = base_url.rstrip("/") + "/v1"
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(limit=self.connections),
                timeout=aiohttp.ClientTimeout(total=None),  # the runner bounds each turn
            )
        return self._session

    async def characters(self) -> list[str]:
        timeout = aiohttp.ClientTimeout(total=30)
        async with self.session.get(f"{self.base_url}/models", timeout=timeout) as response:
            response.raise_for_status()
            return [str(model["id"]) for model in (await response.json())["data"]]

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
        except aiohttp.ClientConnectorError:
            outcome.error = "connect_failed"
        except (aiohttp.ServerTimeoutError, TimeoutError):
            outcome.error = "timeout"
        except aiohttp.ClientError:  # disconnected, a body cut short, a reset connection
            outcome.error = "disconnected"
        except (ValueError, KeyError, IndexError, TypeError):
            outcome.error = "bad_response"
        return outcome

    async def _whole(self, body: dict[str, Any], outcome: TurnOutcome) -> None:
        async with self.session.post(f"{self.base_url}/chat/completions", json=body) as answer:
            raw = await answer.read()
            if answer.status != 200:
                outcome.error = f"http_{answer.status}"
                return
        content = json.loads(raw)["choices"][0]["message"]["content"] or ""
        outcome.done_ns = outcome.first_content_ns = time.time_ns()
        outcome.text = content
        outcome.deltas = 1

    async def _streamed(self, body: dict[str, Any], outcome: TurnOutcome) -> None:
        pieces: list[str] = []
        async with self.session.post(f"{self.base_url}/chat/completions", json=body) as answer:
            if answer.status != 200:
                await answer.read()
                outcome.error = f"http_{answer.status}"
                return
            async for raw in answer.content:  # line by line
                line = raw.decode().strip()
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
        if self._session is not None:
            await self._session.close()
