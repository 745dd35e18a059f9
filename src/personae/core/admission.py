"""Admission control: a bounded number of turns run, a bounded number wait, nobody waits long.

Past the bounds a caller is refused at once with ``Overloaded`` and a ``retry_after``: never an
unbounded queue, never a request that hangs. One ``Admission`` per process bounds every turn,
whichever transport asked for it (WebSocket and channels through the hub, HTTP, MCP).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from personae.core.observe import TurnObserver
from personae.errors import Overloaded


class Admission:
    def __init__(
        self,
        *,
        max_concurrent: int,
        max_queued: int,
        enqueue_timeout_s: float,
        retry_after_s: float = 1.0,
        observer: TurnObserver | None = None,
    ) -> None:
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queued >= 0")
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.enqueue_timeout_s = enqueue_timeout_s
        self.retry_after_s = retry_after_s
        # Told of every refusal here, so each transport's is counted once, the same way.
        self._observer = observer or TurnObserver()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running = 0
        self._queued = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self._queued

    def slot(self) -> Slot:
        """A slot for an ``async with`` block: taken on entry (after waiting in line, or
        refused with ``Overloaded``), given back on exit however the block ends."""
        return Slot(self)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if there is room in the line. Pair with ``release``."""
        if self._slots.locked() or self._queued:
            if self._queued >= self.max_queued:
                raise self._refusal("the server is at capacity; try again shortly")
            self._queued += 1
            try:
                async with asyncio.timeout(self.enqueue_timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise self._refusal("waited too long for a free slot") from None
            finally:
                self._queued -= 1
        else:
            await self._slots.acquire()
        self._running += 1

    def release(self) -> None:
        self._running -= 1
        self._slots.release()

    def _refusal(self, message: str) -> Overloaded:
        self._observer.request_rejected("overloaded")
        return Overloaded(
            message,
            retry_after=self.retry_after_s,
            running=self._running,
            queued=self._queued,
        )


class Slot:
    """One turn's slot as an async context manager. A plain class, not a generator: a slot
    is given back by its exit and nothing else (no finaliser that frees it whenever the
    garbage collector runs, which would hide a leak until the next collection)."""

    __slots__ = ("_admission", "_held")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._held = False

    async def __aenter__(self) -> None:
        await self._admission.acquire()
        self._held = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held:  # once, whatever calls exit
            self._held = False
            self._admission.release()
