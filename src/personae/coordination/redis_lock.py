"""A ConversationLock shared by every process on one Redis: a lease per key with a fencing
token, renewed while held.

    acquire   token = INCR fence:<key>; SET lock:<key> token NX PX ttl   (one script)
    renew     every ttl/3: PEXPIRE lock:<key> ttl if it still holds our token
    release   DEL lock:<key> if it still holds our token

A holder whose process dies stops renewing; its lease expires after ``ttl`` and the next
waiter gets the key with a larger token. Tokens only grow, so a store that remembers the
largest token it has seen for a key can refuse a write from a holder that lost its lease
(``Lease.token``; the fencing itself is the store's part).

Within one process waiters queue in arrival order (an asyncio lock per key in front of the
Redis lease); across processes the next holder is whichever waiter polls first. Turns of one
conversation normally arrive at one node (sticky routing), so the order that matters holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from personae.coordination.local import LocalConversationLock
from personae.core.ports import ConversationLock
from personae.errors import CoordinationError

log = structlog.get_logger(__name__)

_ACQUIRE = """
local token = redis.call('INCR', KEYS[2])
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[1]) then return token end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(slots=True)
class Lease:
    key: str
    token: int  # larger than every earlier holder's of this key
    lost: asyncio.Event = field(default_factory=asyncio.Event)  # renewal failed: not ours


class RedisConversationLock(ConversationLock):
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "personae",
        ttl_s: float = 10.0,
        poll_s: float = 0.005,
        max_poll_s: float = 0.1,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._poll_s = poll_s
        self._max_poll_s = max_poll_s
        self._local = LocalConversationLock()  # in-process arrival order, one poller per key
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self.lease(key):
            yield

    @asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[Lease]:
        """``hold`` that also says which token this holder has, and whether it lost it."""
        async with self._local.hold(key):
            lease = await self._take(key)
            renewing = asyncio.create_task(self._keep(lease))
            try:
                yield lease
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                await asyncio.shield(self._give_back(lease))

    async def _take(self, key: str) -> Lease:
        names = [f"{self._prefix}:lock:{key}", f"{self._prefix}:fence:{key}"]
        delay = self._poll_s
        while True:
            try:
                token = int(await self._acquire(keys=names, args=[self._ttl_ms]))
            except RedisError as exc:
                raise CoordinationError(f"cannot take the lock: {exc}") from exc
            if token:
                return Lease(key, token)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_poll_s)

    async def _keep(self, lease: Lease) -> None:
        name = f"{self._prefix}:lock:{lease.key}"
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                renewed = await self._renew(keys=[name], args=[lease.token, self._ttl_ms])
            except RedisError as exc:
                log.warning("lock renewal failed", key=lease.key, error=str(exc))
                continue  # try again before the lease runs out
            if not renewed:
                log.warning("lock lost", key=lease.key, token=lease.token)
                lease.lost.set()
                return

    async def _give_back(self, lease: Lease) -> None:
        name = f"{self._prefix}:lock:{lease.key}"
        try:
            await self._release(keys=[name], args=[lease.token])
        except RedisError as exc:  # it expires by itself
            log.warning("lock release failed", key=lease.key, error=str(exc))
