"""Asking the model for JSON of a known shape: the pattern the rolling summary and the LLM fact
extractor share.

    instruction (with the JSON schema) -> model -> JSON -> pydantic model (extra keys, wrong
    types: refused) -> the caller's own check (too long, ...) -> the value
    malformed: asked once more, told what was wrong; malformed again: None, logged

What the model wrote is never used unless it validated: a caller gets a checked value or
nothing.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from personae.core.ports import ChatModel
from personae.core.types import ChatMessage, ChatRequest, GenerationParams, Role

log = structlog.get_logger(__name__)

T = TypeVar("T", bound=BaseModel)

#: A model may wrap its JSON in a Markdown fence; the fence is not part of the answer.
_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL)


@functools.cache  # pydantic builds a schema afresh on every call: ~0.4 ms for each ask
def _instruction(schema: type[BaseModel]) -> str:
    shape = json.dumps(schema.model_json_schema(), separators=(",", ":"))
    return f"Answer with one JSON object and nothing else, matching this JSON schema:\n{shape}"


class Malformed(ValueError):
    """What the model answered did not validate; the message says why, for the retry."""


@dataclass(frozen=True, slots=True)
class StructuredAsk(Generic[T]):
    """One structured question: the shape of the answer and an extra check on its content
    (``check`` returns why a parsed answer is refused, or None to accept it)."""

    schema: type[T]
    max_tokens: int = 512
    attempts: int = 2  # the first answer and one retry
    check: Callable[[T], str | None] | None = None

    def instruction(self) -> str:
        """What the model is told about the answer's form."""
        return _instruction(self.schema)

    def parse(self, text: str) -> T:
        """The validated answer, or ``Malformed`` saying what is wrong with ``text``."""
        body = text.strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced["body"]
        try:
            value = self.schema.model_validate_json(body)
        except ValidationError as exc:
            raise Malformed(_describe(exc)) from None
        problem = self.check(value) if self.check is not None else None
        if problem:
            raise Malformed(problem)
        return value

    async def ask(
        self, model: ChatModel, messages: Sequence[ChatMessage], *, what: str
    ) -> T | None:
        """Ask ``model``; the validated answer, or None after ``attempts`` malformed ones
        (logged with ``what`` was asked). Backend errors are the caller's."""
        prompt = [*messages, ChatMessage(Role.SYSTEM, self.instruction())]
        for attempt in range(1, self.attempts + 1):
            text = await _complete(model, prompt, self.max_tokens)
            try:
                return self.parse(text)
            except Malformed as exc:
                log.warning(
                    "memory: the model's structured answer was malformed",
                    what=what,
                    attempt=attempt,
                    error=str(exc),
                    retry=attempt < self.attempts,
                )
                # The retry sees its own answer and what was wrong with it.
                prompt = [
                    *prompt,
                    ChatMessage(Role.ASSISTANT, text),
                    ChatMessage(Role.SYSTEM, f"That answer was invalid ({exc}). {_AGAIN}"),
                ]
        log.warning("memory: structured answer skipped after retries", what=what)
        return None


_AGAIN = "Answer again with the JSON object only."


async def _complete(model: ChatModel, messages: Sequence[ChatMessage], max_tokens: int) -> str:
    # Temperature 0: the same messages should give the same summary or facts.
    request = ChatRequest(
        messages=tuple(messages),
        params=GenerationParams(max_tokens=max_tokens, temperature=0.0, top_p=1.0),
    )
    parts: list[str] = []
    async with aclosing(model.stream(request)) as chunks:
        async for chunk in chunks:
            parts.append(chunk.text)
    return "".join(parts)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
