"""Two nodes on one database: each its own ``PostgresDatabase`` (its own pool), as two
processes on two machines would be. The database alone keeps them consistent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from personae.core.types import EventRecord, NewMessage, Role
from personae.errors import Conflict, StateConflict
from personae.storage.postgres import PostgresConversationStore, PostgresDatabase

Nodes = tuple[PostgresConversationStore, PostgresConversationStore]


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[Nodes]:
    async with (
        PostgresConversationStore(PostgresDatabase(pg_url, max_size=4)) as one,
        PostgresConversationStore(PostgresDatabase(pg_url, max_size=4)) as two,
    ):
        yield one, two


async def test_concurrent_appends_from_two_nodes_get_gap_free_unique_seqs(nodes: Nodes) -> None:
    one, two = nodes
    opened = await one.open_turn(external_user_id="u", character_id="c", text="hi")
    conversation = opened.conversation.id

    async def append(store: PostgresConversationStore, n: int) -> int:
        message = await store.append_message(conversation, NewMessage(Role.ASSISTANT, f"r{n}"))
        return message.seq

    seqs = await asyncio.gather(*(append(nodes[n % 2], n) for n in range(40)))
    assert sorted(seqs) == list(range(2, 42))
    stored = await two.list_messages(conversation, limit=100)
    assert [m.seq for m in stored] == list(range(1, 42))
    final = await one.get_conversation(conversation)
    assert final is not None
    assert final.last_seq == 41


async def test_first_turns_of_one_user_on_two_nodes_share_one_conversation(nodes: Nodes) -> None:
    turns = await asyncio.gather(
        *(
            nodes[n % 2].open_turn(external_user_id="new", character_id="c", text=f"m{n}")
            for n in range(10)
        )
    )
    assert len({t.user.id for t in turns}) == 1
    assert sum(t.created_user for t in turns) == 1
    assert len({t.conversation.id for t in turns}) == 1
    assert sum(t.created_conversation for t in turns) == 1
    assert sorted(t.message.seq for t in turns) == list(range(1, 11))


async def test_a_key_sent_to_two_nodes_at_once_stores_one_message(nodes: Nodes) -> None:
    one, two = nodes
    await one.open_turn(external_user_id="u", character_id="c", text="known user")
    first, second = await asyncio.gather(
        one.open_turn(external_user_id="u", character_id="c", text="hi", idempotency_key="k"),
        two.open_turn(external_user_id="u", character_id="c", text="hi", idempotency_key="k"),
    )
    assert first.message.id == second.message.id
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert len(await one.list_messages(first.conversation.id)) == 2


async def test_only_one_node_wins_a_state_version(nodes: Nodes) -> None:
    one, two = nodes
    opened = await one.open_turn(external_user_id="u", character_id="c", text="hi")
    conversation = opened.conversation.id
    results = await asyncio.gather(
        *(nodes[n % 2].put_state(conversation, "mood", {"writer": n}, None) for n in range(6)),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, StateConflict) for r in results if isinstance(r, BaseException))
    state = await two.get_state(conversation, "mood")
    assert state is not None
    assert (state.version, state.value) == (1, wins[0].value)


async def test_event_logs_written_from_two_nodes_never_fork(nodes: Nodes) -> None:
    one, two = nodes
    opened = await one.open_turn(external_user_id="u", character_id="c", text="hi")
    conversation = opened.conversation.id
    record = EventRecord(1, 1, "message.ack", {"n": 1})
    results = await asyncio.gather(
        one.append_events(conversation, [record]),
        two.append_events(conversation, [record]),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert await two.list_events(conversation) == [record]
