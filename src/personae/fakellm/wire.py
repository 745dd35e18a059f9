"""The OpenAI wire format of fake replies: server-sent-event chunks, whole completions, errors.

A token's event is pre-split around its text so that emitting one costs a concatenation, not a
JSON encoding: at tens of thousands of tokens per second the fake must stay cheap.
"""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"


def _sse(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


class ChunkWriter:
    """Chunks of one model's streams (id and model are fixed: nothing reads them per request)."""

    def __init__(self, model: str) -> None:
        self.model = model
        head, tail = self._chunk([{"index": 0, "delta": {"content": "@TEXT@"}}]).split(b"@TEXT@")
        self._content_head, self._content_tail = head, tail
        self.role = self._chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        self.finish = self._chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": choices,
                **extra,
            }
        )

    def content(self, text: str) -> bytes:
        """A content delta; ``text`` must need no JSON escaping (stamp words never do)."""
        return self._content_head + text.encode() + self._content_tail

    def usage(self, prompt: int, completion: int) -> bytes:
        return self._chunk([], usage=usage(prompt, completion))

    def delta(self, delta: dict[str, Any]) -> bytes:
        """Any delta, JSON-encoded (scripted replies: escaping needed, speed is not)."""
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])

    def finished(self, reason: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])


def completion(
    model: str,
    text: str,
    prompt: int,
    completion_tokens: int,
    *,
    message: dict[str, Any] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message or {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt, completion_tokens),
    }


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def error(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {
        "error": {
            "message": message,
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }


def prompt_tokens(body: dict[str, Any]) -> int:
    """Four characters per token, like Personae's own estimate for remote models."""
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
    return max(1, chars // 4)
