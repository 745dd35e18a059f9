"""A turn whose node died, as the node that finds it sees it: real Redis (bus, locks,
in-flight turns) and a real store, the dead node's traces made by hand: its acknowledged
message and ack stored, some deltas published but never stored, its entry left behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from personae.coordination.redis_bus import RedisEventBus
from personae.coordination.redis_lock import RedisConversationLock
from personae.coordination.redis_turns import RedisInflightTurns
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import ACK, DELTA, DONE, ConversationEvent, compact, message_payload
from personae.core.hub import ConversationHub
from personae.core.ports import InflightTurn
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage
from personae.errors import Conflict
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel
from tests.redis_server import RedisServer

KEY = "sam\x00aria"


@dataclass
class Survivor:
    hub: ConversationHub
    store: SqliteConversationStore
    bus: RedisEventBus
    inflight: RedisInflightTurns
    model: FakeChatModel


@pytest.fixture
async def node(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Survivor]:
    client = Redis.from_url(redis_server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    model = FakeChatModel()
    store = SqliteConversationStore(tmp_path / "shared.sqlite3")
    bus = RedisEventBus(client, prefix=prefix, delta_batch_s=0)
    inflight = RedisInflightTurns(client, node="b", prefix=prefix, visibility_timeout_s=5)
    async with store, bus, inflight:
        service = ChatService(
            catalog=CharacterCatalog([Character(id="aria", name="Aria", greetings=("Hi!",))]),
            store=store,
            routes=ModelRoutes({"fake": model}, default="fake"),
            lock=RedisConversationLock(client, prefix=f"{prefix}:turn", ttl_s=2),
            settings=TurnSettings(),
        )
        hub = ConversationHub(
            service=service,
            store=store,
            bus=bus,
            lock=RedisConversationLock(client, prefix=f"{prefix}:hub", ttl_s=2),
            admission=Admission(max_concurrent=4, max_queued=4, enqueue_timeout_s=5),
            inflight=inflight,
            node="b",
        )
        yield Survivor(hub, store, bus, inflight, model)
        await hub.close(grace_s=5)
    await client.aclose()


async def dead_node_turn(node: Survivor, *, finished: bool = False) -> InflightTurn:
    """What node "a" left when it was killed: message + ack stored, three deltas only on the
    bus (or, ``finished``, its done stored too), and its in-flight entry."""
    opened = await node.store.open_turn(
        external_user_id="sam", character_id="aria", text="Tell me.", greeting="Hi!"
    )
    conversation = opened.conversation.id
    ack_seq = opened.conversation.last_event_seq + 1
    ack = ConversationEvent(
        conversation, ack_seq, ACK, {"message": message_payload(opened.message)}
    )
    await node.store.append_events(conversation, compact([ack]))
    reply_to = opened.message.id
    deltas = [
        ConversationEvent(conversation, ack_seq + i, DELTA, {"reply_to": reply_to, "text": word})
        for i, word in enumerate(["Once ", "upon ", "a "], start=1)
    ]
    for delta in deltas:
        await node.bus.publish(delta)
    if finished:  # it was stored after all, just before the node died
        done = ConversationEvent(conversation, ack_seq + 4, DONE, {"reply_to": reply_to})
        await node.store.append_events(conversation, compact([*deltas, done]))
    turn = InflightTurn(KEY, conversation, reply_to, ack_seq, "a")  # "a" never beats
    await node.inflight.begin(turn)
    return turn


async def test_the_sweep_stores_what_was_published_and_ends_the_turn(node: Survivor) -> None:
    turn = await dead_node_turn(node)
    assert await node.hub.end_orphans() == 1
    assert await node.inflight.get(KEY) is None
    log = await node.store.list_events(turn.conversation_id, after_seq=0, limit=50)
    events = [e.event for e in log]
    assert events == [ACK, DELTA, "error"]  # the deltas as one stored run, then the ending
    error = log[-1]
    assert error.seq == turn.ack_seq + 4  # right after the last delta published
    assert error.payload["code"] == "interrupted"
    assert error.payload["reply_to"] == turn.reply_to
    assert log[1].payload["chunks"] == ["Once ", "upon ", "a "]
    assert await node.hub.end_orphans() == 0  # once


async def test_a_new_turn_ends_the_orphan_first_and_numbers_after_it(node: Survivor) -> None:
    turn = await dead_node_turn(node)
    node.model.enqueue("Again.")
    inbound = InboundMessage(
        user="sam", character_id="aria", text="Hello?", conversation_id=turn.conversation_id
    )
    accepted = await node.hub.send(inbound)
    assert accepted.ack_seq == turn.ack_seq + 5  # after the three deltas and the error
    log = await node.store.list_events(turn.conversation_id, after_seq=0, limit=50)
    assert [e.event for e in log][:4] == [ACK, DELTA, "error", ACK]
    assert await node.inflight.get(KEY) in (
        None,
        InflightTurn(KEY, turn.conversation_id, accepted.message_id, accepted.ack_seq or 0, "b"),
    )


async def test_a_turn_that_had_ended_is_only_forgotten(node: Survivor) -> None:
    turn = await dead_node_turn(node, finished=True)
    assert await node.hub.end_orphans() == 0
    assert await node.inflight.get(KEY) is None
    log = await node.store.list_events(turn.conversation_id, after_seq=0, limit=50)
    assert [e.event for e in log] == [ACK, DELTA, DONE]  # no error added to a finished turn


async def test_the_dead_node_cannot_write_after_its_turn_was_ended(node: Survivor) -> None:
    """A node that was only paused past its lease comes back and stores its reply's end: the
    event log takes a record only at the next seq, so the late write is refused."""
    turn = await dead_node_turn(node)
    await node.hub.end_orphans()
    late_done = ConversationEvent(
        turn.conversation_id, turn.ack_seq + 4, DONE, {"reply_to": turn.reply_to}
    )
    with pytest.raises(Conflict):
        await node.store.append_events(turn.conversation_id, compact([late_done]))
    log = await node.store.list_events(turn.conversation_id, after_seq=0, limit=50)
    assert [e.event for e in log] == [ACK, DELTA, "error"]
