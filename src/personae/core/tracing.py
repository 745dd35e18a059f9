"""The tracing port: spans for a turn and its stages, with no tracing library in the core.

    span = tracer.start("turn", character="aria")      # a child of the caller's current span
    with span.child("prompt"):                         # a stage: ends when the block does
        ...
    chunks = span.child("generate").around(model.stream(request))  # current while it runs

The base classes do nothing (tracing is off by default, like ``TurnObserver``);
``observability/tracing.py`` implements them with OpenTelemetry. Stage spans take their
parent explicitly, never from ambient context, because a turn is an async generator whose
steps may run in different tasks; only ``around`` makes a span current, and only inside each
step of the wrapped stream, which is where a backend client reads it to propagate
``traceparent``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")
Attribute = str | int | float | bool


class Span:
    """A span that records nothing. Ending it twice is harmless."""

    recording = False

    def child(self, name: str, **attributes: Attribute) -> Span:
        """A span for a stage of this one, started now."""
        return self

    def set(self, **attributes: Attribute) -> None:
        """Add attributes (names without a prefix; the adapter adds ``personae.``)."""

    def fail(self, exc: BaseException) -> None:
        """Mark the span as failed by ``exc``."""

    def end(self) -> None:
        """End the span (its duration stops here)."""

    def around(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        """``stream``, with this span current while each of its steps runs."""
        return stream

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.fail(exc)
        self.end()


NO_SPAN = Span()


class Tracer:
    """Starts spans that record nothing; ``observability.tracing.OtelTracer`` records them."""

    def start(self, name: str, **attributes: Attribute) -> Span:
        """A span whose parent is the caller's current span (an HTTP request's), if any."""
        return NO_SPAN
