"""``RateLimiter`` on the ``limits`` library: a sliding window counter (two counters per key,
so a token budget of a million costs no more than one of sixty), in memory or, with
``coordination: redis``, in Redis so that every node counts against one budget. The counter is
an approximation: the library floors the previous minute's weighted share, so in the first
moments of a wall-clock minute a budget of N can admit N + 1.

A shared storage that cannot be reached admits the request (and logs it): a rate limit is
there to protect the service, and refusing everyone while Redis restarts would do the
opposite."""

from __future__ import annotations

import time

import structlog
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from personae.core.ports import RateLimiter

log = structlog.get_logger(__name__)

_SOONEST_S = 0.05  # a retry-after is never zero: the window has to move first


class SlidingWindowLimiter(RateLimiter):
    """``per_minute`` units per key over a sliding minute; ``namespace`` keeps budgets of
    different kinds (requests, tokens) apart in a shared storage."""

    def __init__(self, per_minute: int, *, namespace: str, storage: Storage | None = None) -> None:
        self.item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        self._limiter = SlidingWindowCounterRateLimiter(storage or MemoryStorage())

    async def hit(self, key: str, cost: int = 1) -> float | None:
        try:
            if cost == 0:
                admitted = await self._limiter.test(self.item, key, cost=1)
            else:
                admitted = await self._limiter.hit(self.item, key, cost=cost)
            return None if admitted else await self._wait(key)
        except StorageError as exc:
            log.warning("rate limit storage unreachable; admitted", error=str(exc.storage_error))
            return None

    async def spend(self, key: str, cost: int) -> None:
        if cost <= 0:
            return
        try:
            stats = await self._limiter.get_window_stats(self.item, key)
            take = min(cost, stats.remaining)
            if take > 0:
                await self._limiter.hit(self.item, key, cost=take)
        except StorageError as exc:
            log.warning("rate limit storage unreachable; not charged", error=str(exc.storage_error))

    async def _wait(self, key: str) -> float:
        stats = await self._limiter.get_window_stats(self.item, key)
        return max(stats.reset_time - time.time(), _SOONEST_S)
