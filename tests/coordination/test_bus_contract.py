"""The EventBus contract: the in-process bus and the Redis Streams bus pass the same suite
(the Redis one against a real redis-server on loopback)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from redis.asyncio import Redis

from personae.coordination.local import LocalEventBus
from personae.coordination.redis_bus import RedisEventBus
from personae.core.events import ConversationEvent
from personae.core.ports import EventBus
from tests.redis_server import RedisServer

MakeBus = Callable[[], AbstractAsyncContextManager[EventBus]]


@pytest.fixture(params=["local", "redis"])
def make_bus(request: pytest.FixtureRequest) -> MakeBus:
    if request.param == "local":

        @asynccontextmanager
        async def local() -> AsyncIterator[EventBus]:
            yield LocalEventBus()

        return local
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t{uuid.uuid4().hex[:8]}"  # every test its own keys on the shared server

    @asynccontextmanager
    async def redis() -> AsyncIterator[EventBus]:
        client = Redis.from_url(server.url)
        try:
            async with RedisEventBus(client, prefix=prefix, block_ms=200) as bus:
                yield bus
        finally:
            await client.aclose()

    return redis


def event(conversation: str, seq: int) -> ConversationEvent:
    return ConversationEvent(conversation, seq, "message.delta", {"text": f"t{seq}", "n": [seq]})


async def take(events: AsyncIterator[ConversationEvent], count: int) -> list[ConversationEvent]:
    async def collect() -> list[ConversationEvent]:
        return [await anext(events) for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout=5)


async def test_a_subscriber_gets_what_is_published_after_it_subscribed_in_order(
    make_bus: MakeBus,
) -> None:
    async with make_bus() as bus:
        await bus.publish(event("c1", 1))  # before anyone listens: not delivered
        async with bus.subscribe("c1") as events:
            for seq in range(2, 12):
                await bus.publish(event("c1", seq))
            got = await take(events, 10)
    assert [e.seq for e in got] == list(range(2, 12))
    assert got[0] == event("c1", 2)  # the payload survives the trip whole


async def test_every_subscriber_of_a_conversation_and_only_it_gets_its_events(
    make_bus: MakeBus,
) -> None:
    async with (
        make_bus() as bus,
        bus.subscribe("c1") as first,
        bus.subscribe("c1") as second,
        bus.subscribe("c2") as other,
    ):
        await bus.publish(event("c1", 1))
        await bus.publish(event("c2", 7))
        assert [e.seq for e in await take(first, 1)] == [1]
        assert [e.seq for e in await take(second, 1)] == [1]
        assert [(e.conversation_id, e.seq) for e in await take(other, 1)] == [("c2", 7)]


async def test_a_late_subscriber_starts_at_its_own_entry(make_bus: MakeBus) -> None:
    async with make_bus() as bus, bus.subscribe("c1") as early:
        await bus.publish(event("c1", 1))
        async with bus.subscribe("c1") as late:
            await bus.publish(event("c1", 2))
            assert [e.seq for e in await take(late, 1)] == [2]
        assert [e.seq for e in await take(early, 2)] == [1, 2]


async def test_two_buses_on_one_redis_see_each_other_s_events(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
    try:
        async with (
            RedisEventBus(one, prefix=prefix) as node_a,
            RedisEventBus(two, prefix=prefix) as node_b,
            node_b.subscribe("c1") as on_b,
        ):
            await node_a.publish(event("c1", 1))
            await node_a.publish(event("c1", 2))
            assert [e.seq for e in await take(on_b, 2)] == [1, 2]
    finally:
        await one.aclose()
        await two.aclose()


async def test_the_stream_is_capped(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_server.url)
    try:
        async with RedisEventBus(client, prefix=prefix, maxlen=50, delta_batch_s=0) as bus:
            for seq in range(1, 1001):
                await bus.publish(event("c1", seq))
            length = await client.xlen(bus.stream("c1"))
    finally:
        await client.aclose()
    assert 50 <= length < 1000  # MAXLEN ~: trimmed in whole macro nodes, never unbounded


def done(conversation: str, seq: int) -> ConversationEvent:
    return ConversationEvent(conversation, seq, "message.done", {"message": {"seq": seq}})


async def test_deltas_go_out_in_batches_and_keep_their_order(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_server.url)
    try:
        async with RedisEventBus(client, prefix=prefix) as bus, bus.subscribe("c1") as events:
            for seq in range(1, 51):
                await bus.publish(event("c1", seq))
            await bus.publish(done("c1", 51))  # sends the deltas waiting before it first
            got = await take(events, 51)
            entries = await client.xlen(bus.stream("c1"))
    finally:
        await client.aclose()
    assert [e.seq for e in got] == list(range(1, 52))
    assert got[-1].event == "message.done"
    assert entries == 1  # one XADD for the whole burst, not one per token


async def test_deltas_alone_are_sent_after_a_short_wait(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_server.url)
    try:
        async with (
            RedisEventBus(client, prefix=prefix, delta_batch_s=0.01) as node_a,
            RedisEventBus(client, prefix=prefix) as node_b,
            node_b.subscribe("c1") as on_b,
        ):
            await node_a.publish(event("c1", 1))
            assert [e.seq for e in await take(on_b, 1)] == [1]  # no later event pushed it
    finally:
        await client.aclose()


async def test_recent_gives_another_node_the_events_after_a_seq(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
    try:
        async with (
            RedisEventBus(one, prefix=prefix, delta_batch_s=0) as node_a,
            RedisEventBus(two, prefix=prefix) as node_b,
        ):
            for seq in range(1, 251):  # more than one page of entries
                await node_a.publish(event("c1", seq) if seq % 10 else done("c1", seq))
            await node_a.publish(done("c2", 1))  # another conversation: not in c1's answer
            after_200 = await node_b.recent("c1", after_seq=200)
            everything = await node_b.recent("c1", after_seq=0)
            nothing = await node_b.recent("c1", after_seq=250)
            unknown = await node_b.recent("c9", after_seq=0)
    finally:
        await one.aclose()
        await two.aclose()
    assert [e.seq for e in after_200] == list(range(201, 251))
    assert [e.seq for e in everything] == list(range(1, 251))
    assert nothing == []
    assert unknown == []
    assert after_200[-1] == done("c1", 250)


async def test_a_malformed_entry_is_skipped_and_the_rest_delivered(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_server.url)
    try:
        async with RedisEventBus(client, prefix=prefix) as bus, bus.subscribe("c1") as events:
            await client.xadd(bus.stream("c1"), {"e": "not json"})
            await client.xadd(bus.stream("c1"), {"x": "no event field"})
            await bus.publish(done("c1", 1))
            assert [e.seq for e in await take(events, 1)] == [1]
            assert [e.seq for e in await bus.recent("c1", after_seq=0)] == [1]
    finally:
        await client.aclose()
