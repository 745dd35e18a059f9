"""Which way a request went through a chain of backends, told to whoever listens.

The router (``llm/router.py``) knows the chain it walked, the backends that failed and the one
that answered; the core must not import it. So the router *reports* each request's route
here, and a caller that wants to know wraps the stream it consumes in ``listening``:

    chunks = listening(model.stream(request), routes.append)

The listener is a context variable set only while each step of that stream runs, so a
report reaches the turn whose request made it and nobody else (concurrent turns each have
their own). A backend that is not a routed chain reports nothing; the caller knows the
model it asked.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """A backend that did not answer, and why (an error code, or why it was passed over)."""

    backend: str
    outcome: str


@dataclass(frozen=True, slots=True)
class RouteTaken:
    """One request's way through a chain: ``rounds`` over it (a retry is a round after the
    first), the failed attempts in order, and the backend that answered (None: none did)."""

    chain: tuple[str, ...]
    backend: str | None
    rounds: int = 1
    failures: tuple[Attempt, ...] = ()
    cached: bool = False  # answered from the response cache, no backend asked

    @property
    def retries(self) -> int:
        return max(0, self.rounds - 1)

    @property
    def failed_over(self) -> bool:
        """Answered by a backend other than the chain's primary."""
        return self.backend is not None and bool(self.chain) and self.backend != self.chain[0]


RouteListener = Callable[[RouteTaken], None]

_listener: ContextVar[RouteListener | None] = ContextVar("personae_route_listener", default=None)


def report_route(taken: RouteTaken) -> None:
    """Tell the listener of the stream being consumed right now, if there is one."""
    listener = _listener.get()
    if listener is not None:
        listener(taken)


async def listening(
    stream: AsyncGenerator[T, None], listener: RouteListener
) -> AsyncGenerator[T, None]:
    """``stream``, with ``listener`` hearing the routes reported while each step runs."""
    async with aclosing(stream):
        while True:
            token = _listener.set(listener)
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return
            finally:
                _listener.reset(token)
            yield item
