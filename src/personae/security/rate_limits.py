"""``RateLimiter`` on the ``limits`` library: a sliding window counter (two counters per key,
so a token budget of a million costs no more than one of sixty) in memory. A Redis storage
can replace the memory one later without touching the callers."""

from __future__ import annotations

import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from personae.core.ports import RateLimiter

_SOONEST_S = 0.05  # a retry-after is never zero: the window has to move first


class SlidingWindowLimiter(RateLimiter):
    """``per_minute`` units per key over a sliding minute; ``namespace`` keeps budgets of
    different kinds (requests, tokens) apart in a shared storage."""

    def __init__(self, per_minute: int, *, namespace: str, storage: Storage | None = None) -> None:
        self.item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        self._limiter = SlidingWindowCounterRateLimiter(storage or MemoryStorage())

    async def hit(self, key: str, cost: int = 1) -> float | None:
        if cost == 0:
            admitted = await self._limiter.test(self.item, key, cost=1)
        else:
            admitted = await self._limiter.hit(self.item, key, cost=cost)
        return None if admitted else await self._wait(key)

    async def spend(self, key: str, cost: int) -> None:
        if cost <= 0:
            return
        stats = await self._limiter.get_window_stats(self.item, key)
        take = min(cost, stats.remaining)
        if take > 0:
            await self._limiter.hit(self.item, key, cost=take)

    async def _wait(self, key: str) -> float:
        stats = await self._limiter.get_window_stats(self.item, key)
        return max(stats.reset_time - time.time(), _SOONEST_S)
