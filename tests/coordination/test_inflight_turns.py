"""InflightTurns: the in-process registry and the Redis one keep the same entries; only the
Redis one ever reports orphans (turns of a node that stopped saying it is alive)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from personae.coordination.local import LocalInflightTurns
from personae.coordination.redis_turns import RedisInflightTurns
from personae.core.ports import InflightTurn, InflightTurns
from personae.errors import CoordinationError
from tests.redis_server import RedisServer, free_port


def turn(key: str, node: str, seq: int = 3) -> InflightTurn:
    return InflightTurn(key, f"conv-{key}", f"msg-{key}", seq, node)


@pytest.fixture(params=["local", "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[InflightTurns]:
    if request.param == "local":
        yield LocalInflightTurns()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = Redis.from_url(server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    async with RedisInflightTurns(
        client, node="n1", prefix=prefix, visibility_timeout_s=1
    ) as turns:
        yield turns
    await client.aclose()


async def test_begin_get_and_end(registry: InflightTurns) -> None:
    await registry.begin(turn("k1", "n1"))
    await registry.begin(turn("k2", "n1", seq=9))
    assert await registry.get("k1") == turn("k1", "n1")
    assert await registry.get("k2") == turn("k2", "n1", seq=9)
    await registry.end("k1")
    await registry.end("k1")  # ending twice is harmless
    assert await registry.get("k1") is None
    assert await registry.get("nothing") is None
    assert await registry.orphans() == []  # its own node is alive


async def test_a_node_that_stops_beating_leaves_orphans(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    try:
        async with (
            RedisInflightTurns(client, node="alive", prefix=prefix, visibility_timeout_s=1) as a,
            RedisInflightTurns(client, node="dying", prefix=prefix, visibility_timeout_s=1) as b,
        ):
            await a.begin(turn("k1", "alive"))
            await b.begin(turn("k2", "dying"))
            await client.delete(f"{prefix}:node:dying")  # as if its last beat had expired
            assert b._beat is not None
            b._beat.cancel()  # and it beats no more
            assert await a.orphans() == [turn("k2", "dying")]
            await asyncio.sleep(1.2)  # past the visibility timeout: "alive" kept beating
            assert await a.orphans() == [turn("k2", "dying")]
            await a.end("k2")
            assert await a.orphans() == []
    finally:
        await client.aclose()


async def test_a_malformed_entry_is_skipped(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    try:
        async with RedisInflightTurns(client, node="n", prefix=prefix, visibility_timeout_s=1) as r:
            await client.hset(f"{prefix}:turns", "bad", "not json")
            await client.hset(f"{prefix}:turns", "k1", '["c", "m", 1, "gone"]')
            assert await r.get("bad") is None
            assert await r.orphans() == [InflightTurn("k1", "c", "m", 1, "gone")]
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    registry = RedisInflightTurns(client, node="n", visibility_timeout_s=1)
    with pytest.raises(CoordinationError, match="cannot reach Redis"):
        await registry.open()
    with pytest.raises(CoordinationError):
        await registry.get("k1")
    await client.aclose()
