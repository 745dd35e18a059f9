"""Locks, the event bus, in-flight turns and rate-limit storage: in this process
(``coordination: local``) or on Redis (``coordination: redis``), shared by every node."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import structlog
from limits.aio.storage import RedisStorage, Storage
from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from personae.coordination.local import (
    LocalConversationLock,
    LocalEventBus,
    LocalInflightTurns,
)
from personae.coordination.redis_bus import RedisEventBus
from personae.coordination.redis_lock import RedisConversationLock
from personae.coordination.redis_turns import RedisInflightTurns
from personae.core.ports import ConversationLock, EventBus, InflightTurns
from personae.errors import ConfigurationError
from personae.settings import CoordinationSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Coordination:
    hub_lock: ConversationLock  # around a WebSocket turn, its events numbered and stored
    service_lock: ConversationLock  # around a turn's storage (an HTTP turn has only this one)
    bus: EventBus
    inflight: InflightTurns
    node: str
    rate_storage: Storage | None  # None: each process counts its own
    check: Callable[[], Awaitable[str]]  # for /readyz: "ok", or why not
    shared: bool  # several processes may serve together


async def _always_ok() -> str:
    return "ok"


async def open_coordination(settings: CoordinationSettings, stack: AsyncExitStack) -> Coordination:
    """Entered on ``stack``: closed with it."""
    node = settings.node or f"{socket.gethostname()}-{os.getpid()}"
    if settings.backend == "local":
        return Coordination(
            hub_lock=LocalConversationLock(),
            service_lock=LocalConversationLock(),
            bus=await stack.enter_async_context(LocalEventBus()),
            inflight=LocalInflightTurns(),
            node=node,
            rate_storage=None,
            check=_always_ok,
            shared=False,
        )
    assert settings.redis_url is not None  # the settings check it
    url = settings.redis_url.get_secret_value()
    redis = redis_client(url)
    stack.push_async_callback(redis.aclose)
    prefix = settings.prefix
    try:
        await redis.ping()
    except RedisError as exc:
        raise ConfigurationError(f"coordination: redis: cannot reach Redis ({exc})") from exc
    log.info("coordination on redis", node=node, prefix=prefix)

    async def check() -> str:
        try:
            await asyncio.wait_for(redis.ping(), timeout=1.0)
        except (RedisError, TimeoutError) as exc:
            return f"error: redis unreachable ({type(exc).__name__})"
        return "ok"

    ttl = settings.lock_ttl_s
    return Coordination(
        hub_lock=RedisConversationLock(redis, prefix=f"{prefix}:hub", ttl_s=ttl),
        service_lock=RedisConversationLock(redis, prefix=f"{prefix}:turn", ttl_s=ttl),
        bus=await stack.enter_async_context(
            RedisEventBus(redis, prefix=prefix, maxlen=settings.stream_max_events)
        ),
        inflight=await stack.enter_async_context(
            RedisInflightTurns(
                redis,
                node=node,
                prefix=prefix,
                visibility_timeout_s=settings.visibility_timeout_s,
            )
        ),
        node=node,
        rate_storage=rate_limit_storage(redis, url, prefix=f"{prefix}:limits"),
        check=check,
        shared=True,
    )


def redis_client(url: str) -> Redis:
    """A client that reconnects with backoff: a Redis restart costs some failed calls, which
    callers report (CoordinationError), never a crashed process."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,  # above the bus's 2 s blocking read
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def rate_limit_storage(redis: Redis, url: str, *, prefix: str) -> Storage:
    """The ``limits`` library's Redis storage on ``redis``'s connections (closed with it)."""
    return RedisStorage(
        "async+" + url,
        implementation="redispy",
        key_prefix=prefix,
        wrap_exceptions=True,  # StorageError: the limiter admits, logs, goes on
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # its stubs say str
    )
