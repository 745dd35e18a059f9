"""Request and response shapes of the OpenAI chat completions API, as far as Personae uses it.
Unknown request fields are accepted and ignored, as front ends send many."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from personae.errors import InvalidInput


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise InvalidInput(f"content parts of type {part.type!r} are not supported")
            texts.append(part.text)
        return "".join(texts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatCompletionMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int = 1

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    def new_user_text(self) -> str:
        """The server keeps the history; the new turn is the last message, which must be the
        user's."""
        last = self.messages[-1]
        if last.role != "user":
            raise InvalidInput(
                f"the last message must have role 'user', not {last.role!r}", param="messages"
            )
        return last.text()


def completion_body(
    *,
    completion_id: str,
    created: int,
    model: str,
    content: str,
    finish_reason: str,
    usage: dict[str, int],
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def chunk_body(
    *,
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, str],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def sse_data(body: dict[str, Any]) -> str:
    """One server-sent event carrying ``body`` as compact JSON."""
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


class ContentChunks:
    """The SSE event of each streamed piece of text: ``sse_data(chunk_body(...))`` for a
    ``{"content": text}`` delta, the same bytes, with everything but the text encoded once
    per stream (building and encoding the whole chunk for every token was most of a
    streamed token's cost in the transport)."""

    def __init__(self, *, completion_id: str, created: int, model: str) -> None:
        head = chunk_body(completion_id=completion_id, created=created, model=model, delta={})
        del head["choices"]
        encoded = json.dumps(head, separators=(",", ":"))
        self._before = f'data: {encoded[:-1]},"choices":[{{"index":0,"delta":{{"content":'
        self._after = '},"finish_reason":null,"logprobs":null}]}\n\n'

    def event(self, text: str) -> str:
        return self._before + json.dumps(text) + self._after
