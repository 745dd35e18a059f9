"""The ConversationLock contract for the in-process lock and the Redis lease lock (against a
real redis-server on loopback), and what only the Redis one promises: holders in different
processes exclude each other, tokens grow, and a dead holder's lease expires."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from personae.coordination.local import LocalConversationLock
from personae.coordination.redis_lock import RedisConversationLock
from personae.core.ports import ConversationLock
from tests.redis_server import RedisServer


@asynccontextmanager
async def redis_lock(
    server: RedisServer, prefix: str, **kw: float
) -> AsyncIterator[RedisConversationLock]:
    client = Redis.from_url(server.url)
    try:
        yield RedisConversationLock(client, prefix=prefix, **kw)
    finally:
        await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def lock(request: pytest.FixtureRequest) -> AsyncIterator[ConversationLock]:
    if request.param == "local":
        yield LocalConversationLock()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    async with redis_lock(server, f"t{uuid.uuid4().hex[:8]}") as made:
        yield made


async def test_holders_of_one_key_run_one_at_a_time_in_arrival_order(
    lock: ConversationLock,
) -> None:
    order: list[str] = []
    inside = 0
    most_inside = 0

    async def turn(name: str) -> None:
        nonlocal inside, most_inside
        async with lock.hold("conv"):
            inside += 1
            most_inside = max(most_inside, inside)
            order.append(name)
            await asyncio.sleep(0.01)
            inside -= 1

    async with asyncio.TaskGroup() as group:
        for i in range(5):
            group.create_task(turn(f"t{i}"))
            await asyncio.sleep(0)  # fix the arrival order
    assert order == ["t0", "t1", "t2", "t3", "t4"]
    assert most_inside == 1


async def test_different_keys_do_not_wait_for_each_other(lock: ConversationLock) -> None:
    async with lock.hold("a"), asyncio.timeout(2), lock.hold("b"):
        pass


async def test_a_holder_that_fails_releases_the_key(lock: ConversationLock) -> None:
    with pytest.raises(RuntimeError):
        async with lock.hold("conv"):
            raise RuntimeError("the turn failed")
    async with asyncio.timeout(2), lock.hold("conv"):
        pass


async def test_two_processes_exclude_each_other_and_tokens_grow(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    inside = 0
    most_inside = 0
    tokens: list[int] = []
    async with (
        redis_lock(redis_server, prefix) as node_a,
        redis_lock(redis_server, prefix) as node_b,
    ):

        async def turn(lock: RedisConversationLock) -> None:
            nonlocal inside, most_inside
            async with lock.lease("conv") as lease:
                inside += 1
                most_inside = max(most_inside, inside)
                tokens.append(lease.token)
                await asyncio.sleep(0.005)
                inside -= 1

        async with asyncio.TaskGroup() as group:
            for i in range(10):
                group.create_task(turn(node_a if i % 2 else node_b))
    assert most_inside == 1
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 10


async def test_a_dead_holder_s_lease_expires_and_its_renewal_says_lost(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    async with (
        redis_lock(redis_server, prefix, ttl_s=0.3) as node_a,
        redis_lock(redis_server, prefix, ttl_s=0.3) as node_b,
        node_a.lease("conv") as first,
    ):
        # The process "dies": its lease is deleted as an expiry would, it does not know.
        client = Redis.from_url(redis_server.url)
        await client.delete(f"{prefix}:lock:conv")
        await client.aclose()
        async with asyncio.timeout(2), node_b.lease("conv") as second:
            assert second.token > first.token
            await asyncio.wait_for(first.lost.wait(), timeout=2)  # renewal finds it gone
