"""Test doubles that ship with the package, so that tests of applications built on Personae
need no model and no network (in the spirit of ``httpx.MockTransport``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.core.memory.terms import words
from personae.core.ports import ChatModel, Embedder
from personae.core.types import ChatRequest, ModelChunk, ToolCall, ToolCallDelta, Usage

# --------------------------------------------------------------------------------------------
# FakeChatModel: a scripted chat model
# --------------------------------------------------------------------------------------------


def split_tokens(text: str) -> list[str]:
    """Word-ish tokens that keep their leading whitespace, so ``"".join`` gives ``text`` back
    (apart from trailing whitespace)."""
    return re.findall(r"\s*\S+", text)


@dataclass(frozen=True, slots=True)
class _Script:
    tokens: tuple[str, ...]
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    error: BaseException | None = None
    error_after_tokens: int | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    pieces: int = 3  # each call's arguments are streamed in this many fragments


def tool_call_deltas(calls: Sequence[ToolCall], pieces: int) -> list[tuple[ToolCallDelta, ...]]:
    """``calls`` as OpenAI streams them: per call, a first piece with id and name, then the
    arguments in ``pieces`` fragments; the calls' pieces interleaved, as servers may."""
    streams: list[list[ToolCallDelta]] = []
    for index, call in enumerate(calls):
        size = max(1, -(-len(call.arguments) // max(1, pieces)))
        fragments = [call.arguments[i : i + size] for i in range(0, len(call.arguments), size)]
        streams.append(
            [ToolCallDelta(index, id=call.id, name=call.name)]
            + [ToolCallDelta(index, arguments=fragment) for fragment in fragments]
        )
    chunks: list[tuple[ToolCallDelta, ...]] = []
    for step in range(max((len(s) for s in streams), default=0)):
        chunks.append(tuple(s[step] for s in streams if step < len(s)))
    return chunks


class FakeChatModel(ChatModel):
    """A ChatModel that replies what it was told to.

    ``enqueue`` scripts the next replies, in order; with nothing scripted it streams
    ``default_reply``. Every request is recorded in ``requests``. ``count_tokens`` counts
    whitespace-separated words (``len(text.split())``), so budgets in tests are easy to reason
    about; usage is counted the same way.
    """

    def __init__(
        self,
        *,
        name: str = "fake",
        default_reply: str = "Hello from the fake model.",
        context_window: int = 4096,
        supports_tools: bool = False,
    ) -> None:
        self.name = name
        self.supports_tools = supports_tools
        self.default_reply = default_reply
        self._context_window = context_window
        self.requests: list[ChatRequest] = []
        self._scripts: deque[_Script] = deque()

    def enqueue(
        self,
        text_or_tokens: str | Sequence[str],
        *,
        delay_s: float = 0.0,
        first_token_delay_s: float = 0.0,
        error: BaseException | None = None,
        error_after_tokens: int | None = None,
    ) -> None:
        """Script the next reply: a string is split with ``split_tokens``, a list is streamed
        as given. ``first_token_delay_s`` is waited before the first token, ``delay_s`` before
        each later one. ``error`` is raised before any token, or after ``error_after_tokens``
        tokens (after all of them, before the final chunk, if there are fewer)."""
        tokens = split_tokens(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        self._scripts.append(
            _Script(tuple(tokens), delay_s, first_token_delay_s, error, error_after_tokens)
        )

    def enqueue_tool_calls(
        self,
        *calls: tuple[str, str | Mapping[str, Any]],
        text: str = "",
        pieces: int = 3,
        error: BaseException | None = None,
    ) -> None:
        """Script a reply that calls tools: ``(name, arguments)`` pairs, the arguments as
        JSON text (sent as given, valid or not) or as a mapping (encoded). ``text`` streams
        first; each call's arguments are split into ``pieces`` fragments. ``error`` is raised
        after the calls, before the final chunk (a stream that breaks after a tool call)."""
        made = tuple(
            ToolCall(
                f"call_{len(self.requests) + len(self._scripts)}_{index}",
                name,
                arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
            for index, (name, arguments) in enumerate(calls)
        )
        self._scripts.append(
            _Script(tuple(split_tokens(text)), error=error, tool_calls=made, pieces=pieces)
        )

    @property
    def pending(self) -> int:
        """Scripted replies not yet streamed."""
        return len(self._scripts)

    @property
    def context_window(self) -> int | None:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        self.requests.append(request)
        script = (
            self._scripts.popleft()
            if self._scripts
            else _Script(tuple(split_tokens(self.default_reply)))
        )
        fail_at = script.error_after_tokens or 0
        for index, token in enumerate(script.tokens):
            if script.error is not None and index == fail_at and not script.tool_calls:
                raise script.error
            delay = script.first_token_delay_s if index == 0 else script.delay_s
            if delay > 0:
                await asyncio.sleep(delay)
            yield ModelChunk(text=token)
        for deltas in tool_call_deltas(script.tool_calls, script.pieces):
            yield ModelChunk(tool_calls=deltas)
        if script.error is not None:
            raise script.error
        usage = Usage(
            prompt_tokens=sum(self.count_tokens(m.content) for m in request.messages),
            completion_tokens=self.count_tokens("".join(script.tokens)),
        )
        yield ModelChunk(finish_reason="tool_calls" if script.tool_calls else "stop", usage=usage)


# --------------------------------------------------------------------------------------------
# FakeEmbedder: deterministic word-hashing vectors
# --------------------------------------------------------------------------------------------


class FakeEmbedder(Embedder):
    """Hashes each word into one of ``dimension`` signed buckets and normalises: texts
    sharing words are near, others far, with no model. ``fail_with`` makes every call raise
    (an embedder that is down); ``calls`` records each batch."""

    def __init__(self, *, dimension: int = 64, model_name: str = "fake-hash") -> None:
        self.model_name = model_name
        self.dimension = dimension
        self.fail_with: Exception | None = None
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        if self.fail_with is not None:
            raise self.fail_with
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for word in words(text):
            digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest())
            vector[digest % self.dimension] += 1.0 if digest >> 63 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0:  # no words: a fixed unit vector, so cosine stays defined
            return [1.0] + [0.0] * (self.dimension - 1)
        return [x / norm for x in vector]
