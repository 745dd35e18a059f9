"""Admission control: a bounded number of turns run, a bounded number wait, nobody waits long.

Past the bounds a caller is refused at once with ``Overloaded`` and a ``retry_after``: never an
unbounded queue, never a request that hangs.
"""

from __future__ import annotations

import asyncio

from personae.errors import Overloaded


class Admission:
    def __init__(
        self,
        *,
        max_concurrent: int,
        max_queued: int,
        enqueue_timeout_s: float,
        retry_after_s: float = 1.0,
    ) -> None:
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queued >= 0")
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.enqueue_timeout_s = enqueue_timeout_s
        self.retry_after_s = retry_after_s
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running = 0
        self._queued = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return self._queued

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
        return Overloaded(
            message,
            retry_after=self.retry_after_s,
            running=self._running,
            queued=self._queued,
        )
