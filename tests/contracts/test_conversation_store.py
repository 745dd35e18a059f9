"""The ConversationStore contract: every implementation passes this same suite.

Each implementation is a ``Backend``: it makes a store on fresh storage for one test, and can
look underneath the port for what the port cannot show (a snapshot of every stored row).
Adding PostgreSQL is one more entry in ``BACKENDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from personae.core.ports import ConversationStore
from personae.core.types import EventRecord, MessageStatus, NewMessage, OpenedTurn, Role
from personae.errors import (
    Conflict,
    ConversationNotFound,
    InvalidInput,
    NotFound,
    StateConflict,
    StorageError,
)
from personae.storage.postgres import PostgresConversationStore
from personae.storage.sqlite import SqliteConversationStore
from tests.postgres_server import postgres_snapshot, shared_server
from tests.sqlite_snapshot import Snapshot, sqlite_snapshot


class Backend(Protocol):
    def make(self) -> ConversationStore: ...

    async def snapshot(self) -> Snapshot:
        """Every row of every table, in a stable order."""
        ...


class SqliteBackend:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    def make(self) -> ConversationStore:
        return SqliteConversationStore(self.path)

    async def snapshot(self) -> Snapshot:
        return sqlite_snapshot(self.path)


class PostgresBackend:
    """A fresh database on the session's PostgreSQL (tests/postgres_server.py)."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = shared_server().create_database()

    def make(self) -> ConversationStore:
        return PostgresConversationStore(self.url)

    async def snapshot(self) -> Snapshot:
        return await postgres_snapshot(self.url)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": SqliteBackend,
    "postgres": PostgresBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[ConversationStore]:
    async with backend.make() as opened:
        yield opened


async def turn(
    store: ConversationStore,
    user: str = "u1",
    character: str = "alice",
    text: str = "hi",
    **kwargs: Any,
) -> OpenedTurn:
    return await store.open_turn(external_user_id=user, character_id=character, text=text, **kwargs)


def reply(text: str = "hello") -> NewMessage:
    return NewMessage(Role.ASSISTANT, text)


# --- open_turn ----------------------------------------------------------------------------


async def test_first_turn_creates_user_and_conversation(store: ConversationStore) -> None:
    opened = await turn(store, text="Hi there")

    assert opened.created_user
    assert opened.created_conversation
    assert opened.user.external_id == "u1"
    assert opened.user.id.startswith("usr_")
    assert opened.conversation.id.startswith("conv_")
    assert opened.conversation.user_id == opened.user.id
    assert opened.conversation.character_id == "alice"
    assert opened.conversation.last_seq == 1
    message = opened.message
    assert message.id.startswith("msg_")
    assert (message.seq, message.role, message.content) == (1, Role.USER, "Hi there")
    assert message.status is MessageStatus.COMPLETE
    assert message.conversation_id == opened.conversation.id
    assert await store.get_user("u1") == opened.user
    assert await store.get_conversation(opened.conversation.id) == opened.conversation
    assert await store.list_messages(opened.conversation.id) == [message]


async def test_later_turns_continue_the_conversation(store: ConversationStore) -> None:
    first = await turn(store, greeting="Welcome!")
    second = await turn(store, text="again", greeting="Welcome!")

    assert not second.created_user
    assert not second.created_conversation
    assert second.user == first.user
    assert second.conversation.id == first.conversation.id
    assert second.message.seq == 3  # greeting 1, first message 2; no second greeting
    assert [m.role for m in await store.list_messages(first.conversation.id)] == [
        Role.ASSISTANT,
        Role.USER,
        Role.USER,
    ]


async def test_greeting_is_stored_at_seq_1_before_the_user_message(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="hello", greeting="I am Alice.")

    greeting, message = await store.list_messages(opened.conversation.id)
    assert (greeting.seq, greeting.role, greeting.content) == (1, Role.ASSISTANT, "I am Alice.")
    assert (message.seq, message.role) == (2, Role.USER)
    assert opened.message == message
    assert opened.conversation.last_seq == 2


async def test_explicit_conversation_id_is_used(store: ConversationStore) -> None:
    first = await turn(store)
    second = await turn(store, conversation_id=first.conversation.id)

    assert second.conversation.id == first.conversation.id
    assert second.message.seq == 2


@pytest.mark.parametrize(
    ("user", "character"),
    [("u2", "alice"), ("u1", "bob"), ("u2", "bob")],
    ids=["other-user", "other-character", "both"],
)
async def test_a_conversation_of_someone_else_is_not_found(
    store: ConversationStore, backend: Backend, user: str, character: str
) -> None:
    theirs = await turn(store, user="u1", character="alice")
    await turn(store, user="u2", character="bob")  # u2 exists too
    before = await backend.snapshot()

    with pytest.raises(ConversationNotFound) as caught:
        await turn(store, user=user, character=character, conversation_id=theirs.conversation.id)

    assert caught.value.conversation_id == theirs.conversation.id
    assert await backend.snapshot() == before


async def test_unknown_conversation_id_is_not_found_and_creates_nothing(
    store: ConversationStore, backend: Backend
) -> None:
    before = await backend.snapshot()

    with pytest.raises(ConversationNotFound):
        await turn(store, user="new", conversation_id="conv_missing", greeting="hi")

    # The user was inserted first inside the transaction; the failure took it back out.
    assert await store.get_user("new") is None
    assert await backend.snapshot() == before


async def test_the_most_recently_active_conversation_is_used(store: ConversationStore) -> None:
    older = await turn(store)
    other_character = await turn(store, character="bob")
    newer = await turn(store, new_conversation=True, greeting="Hello again")
    newer_id = newer.conversation.id
    assert newer.created_conversation
    assert not newer.created_user
    assert newer_id != older.conversation.id
    assert [m.seq for m in await store.list_messages(newer_id)] == [1, 2]

    assert (await turn(store)).conversation.id == newer_id
    await store.append_message(older.conversation.id, reply())
    assert (await turn(store)).conversation.id == older.conversation.id

    listed = await store.list_conversations(older.user.id, character_id="alice")
    assert [c.id for c in listed] == [older.conversation.id, newer_id]

    with pytest.raises(InvalidInput):
        await turn(store, conversation_id=newer_id, new_conversation=True)
    everything = await store.list_conversations(older.user.id)
    assert [c.id for c in everything] == [
        older.conversation.id,
        newer_id,
        other_character.conversation.id,
    ]
    assert len(await store.list_conversations(older.user.id, limit=2)) == 2
    assert await store.list_conversations("usr_nobody") == []


# --- append_message and reading ---------------------------------------------------------


async def test_append_message_stores_every_field(store: ConversationStore) -> None:
    opened = await turn(store)
    new = NewMessage(
        Role.ASSISTANT,
        "Partial rep",
        status=MessageStatus.INCOMPLETE,
        model="gemma",
        prompt_tokens=12,
        completion_tokens=3,
        latency_ms=41.5,
    )

    stored = await store.append_message(opened.conversation.id, new)

    assert stored.seq == 2
    assert (stored.role, stored.content, stored.status) == (new.role, new.content, new.status)
    assert (stored.model, stored.prompt_tokens, stored.completion_tokens) == ("gemma", 12, 3)
    assert stored.latency_ms == 41.5
    assert (await store.list_messages(opened.conversation.id))[-1] == stored
    conversation = await store.get_conversation(opened.conversation.id)
    assert conversation is not None
    assert conversation.last_seq == 2


VERSION = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


async def test_a_reply_stores_the_character_version_that_wrote_it(
    store: ConversationStore,
) -> None:
    opened = await turn(store, greeting="Hello!")
    new = NewMessage(Role.ASSISTANT, "Hi", model="fake", character_version=VERSION)

    stored = await store.append_message(opened.conversation.id, new)

    assert stored.character_version == VERSION
    listed = await store.list_messages(opened.conversation.id)
    assert [m.character_version for m in listed] == [None, None, VERSION]
    recent = await store.recent_messages(opened.conversation.id, limit=1)
    assert recent == [stored]


async def test_the_character_version_is_optional_and_per_message(
    store: ConversationStore,
) -> None:
    opened = await turn(store)
    conversation_id = opened.conversation.id
    other = VERSION[::-1]
    await store.append_message(conversation_id, reply("no version"))
    await store.append_message(
        conversation_id, NewMessage(Role.ASSISTANT, "v1", character_version=VERSION)
    )
    await store.append_message(
        conversation_id,
        NewMessage(Role.ASSISTANT, "cut", status=MessageStatus.INCOMPLETE, character_version=other),
    )

    messages = await store.list_messages(conversation_id)
    assert [(m.content, m.character_version) for m in messages] == [
        ("hi", None),
        ("no version", None),
        ("v1", VERSION),
        ("cut", other),
    ]


async def test_append_to_a_missing_conversation_stores_nothing(
    store: ConversationStore, backend: Backend
) -> None:
    await turn(store)
    before = await backend.snapshot()

    with pytest.raises(ConversationNotFound):
        await store.append_message("conv_missing", reply())

    assert await backend.snapshot() == before


async def test_seqs_are_gap_free_and_increasing(store: ConversationStore) -> None:
    opened = await turn(store, greeting="hey")
    conversation_id = opened.conversation.id
    for i in range(8):
        await store.append_message(conversation_id, reply(f"r{i}"))
        await turn(store, text=f"t{i}")

    messages = await store.list_messages(conversation_id)
    assert [m.seq for m in messages] == list(range(1, 19))
    assert len({m.id for m in messages}) == 18
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    assert conversation.last_seq == 18


async def test_concurrent_appends_get_distinct_consecutive_seqs(store: ConversationStore) -> None:
    opened = await turn(store)
    conversation_id = opened.conversation.id

    stored = await asyncio.gather(
        *(store.append_message(conversation_id, reply(f"r{i}")) for i in range(20))
    )

    assert sorted(m.seq for m in stored) == list(range(2, 22))
    listed = await store.list_messages(conversation_id)
    assert [m.seq for m in listed] == list(range(1, 22))
    assert {m.content for m in listed[1:]} == {f"r{i}" for i in range(20)}


async def test_list_messages_pages_forward(store: ConversationStore) -> None:
    opened = await turn(store)
    for i in range(5):
        await store.append_message(opened.conversation.id, reply(f"r{i}"))

    page = await store.list_messages(opened.conversation.id, after_seq=2, limit=2)
    assert [m.seq for m in page] == [3, 4]
    rest = await store.list_messages(opened.conversation.id, after_seq=4)
    assert [m.seq for m in rest] == [5, 6]
    assert await store.list_messages(opened.conversation.id, after_seq=6) == []
    assert await store.list_messages("conv_missing") == []


async def test_recent_messages_are_the_last_ones_oldest_first(store: ConversationStore) -> None:
    opened = await turn(store)
    for i in range(5):
        await store.append_message(opened.conversation.id, reply(f"r{i}"))

    recent = await store.recent_messages(opened.conversation.id, limit=3)
    assert [m.seq for m in recent] == [4, 5, 6]
    assert [m.content for m in recent] == ["r2", "r3", "r4"]
    everything = await store.recent_messages(opened.conversation.id, limit=100)
    assert [m.seq for m in everything] == [1, 2, 3, 4, 5, 6]
    assert await store.recent_messages(opened.conversation.id, limit=0) == []
    assert await store.recent_messages("conv_missing", limit=5) == []


async def test_unknown_user_and_conversation_are_none(store: ConversationStore) -> None:
    assert await store.get_user("nobody") is None
    assert await store.get_conversation("conv_missing") is None


# --- timestamps ---------------------------------------------------------------------------


def _is_utc(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


async def test_timestamps_are_aware_utc_and_move_forward(store: ConversationStore) -> None:
    started = datetime.now(UTC)
    opened = await turn(store, greeting="hey")
    conversation = opened.conversation
    times = [opened.user.created_at, conversation.created_at, conversation.updated_at]
    assert all(_is_utc(t) for t in times)
    assert started <= conversation.created_at <= conversation.updated_at

    updated = conversation.updated_at
    for _ in range(5):
        message = await store.append_message(conversation.id, reply())
        assert _is_utc(message.created_at)
        stored = await store.get_conversation(conversation.id)
        assert stored is not None
        assert stored.updated_at > updated
        assert _is_utc(stored.updated_at)
        assert stored.updated_at >= message.created_at
        updated = stored.updated_at

    messages = await store.list_messages(conversation.id)
    assert all(_is_utc(m.created_at) for m in messages)
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)


# --- discard_turn -------------------------------------------------------------------------


async def test_discarding_a_first_turn_leaves_no_trace(
    store: ConversationStore, backend: Backend
) -> None:
    before = await backend.snapshot()

    opened = await turn(store, greeting="Welcome!")
    await store.discard_turn(opened)

    assert await backend.snapshot() == before
    assert await store.get_user("u1") is None
    assert await store.get_conversation(opened.conversation.id) is None


async def test_discarding_a_turn_restores_the_conversation(
    store: ConversationStore, backend: Backend
) -> None:
    first = await turn(store, greeting="Welcome!")
    await store.append_message(first.conversation.id, reply())
    before = await backend.snapshot()
    conversation_before = await store.get_conversation(first.conversation.id)

    opened = await turn(store, text="doomed")
    assert not opened.created_user
    assert not opened.created_conversation
    await store.discard_turn(opened)

    assert await backend.snapshot() == before
    assert await store.get_conversation(first.conversation.id) == conversation_before
    again = await turn(store, text="retry")
    assert again.message.seq == 4  # the discarded seq is handed out again
    assert [m.seq for m in await store.list_messages(first.conversation.id)] == [1, 2, 3, 4]


async def test_discarding_a_new_conversation_keeps_the_user(
    store: ConversationStore, backend: Backend
) -> None:
    first = await turn(store, character="alice")
    before = await backend.snapshot()

    opened = await turn(store, character="bob", greeting="Bob here.")
    assert opened.created_conversation
    assert not opened.created_user
    await store.discard_turn(opened)

    assert await backend.snapshot() == before
    assert await store.get_user("u1") == first.user


async def test_a_discarded_new_user_with_other_conversations_is_kept(
    store: ConversationStore,
) -> None:
    first = await turn(store, character="alice")
    await turn(store, character="bob")

    await store.discard_turn(first)

    assert await store.get_user("u1") == first.user
    assert await store.get_conversation(first.conversation.id) is None
    assert [c.character_id for c in await store.list_conversations(first.user.id)] == ["bob"]


# --- lifecycle ----------------------------------------------------------------------------


async def test_a_store_that_is_not_open_refuses_work(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(StorageError):
        await store.get_user("u1")

    async with store:
        await turn(store)

    with pytest.raises(StorageError):
        await turn(store)


# --- event log ----------------------------------------------------------------------------


def record(seq: int, last: int | None = None, event: str = "message.ack") -> EventRecord:
    return EventRecord(seq, last if last is not None else seq, event, {"n": seq})


async def test_events_append_in_order_and_read_back_after_a_seq(store: ConversationStore) -> None:
    conversation = (await turn(store)).conversation
    await store.append_events(conversation.id, [record(1)])
    await store.append_events(
        conversation.id,
        [record(2, 4, "message.delta"), record(5, event="message.done")],
    )
    stored = await store.get_conversation(conversation.id)
    assert stored is not None
    assert stored.last_event_seq == 5
    assert [(r.seq, r.last_seq) for r in await store.list_events(conversation.id)] == [
        (1, 1),
        (2, 4),
        (5, 5),
    ]
    # A run that straddles after_seq is returned whole; the reader skips what it has.
    straddling = await store.list_events(conversation.id, after_seq=3)
    assert [(r.seq, r.event, r.payload) for r in straddling] == [
        (2, "message.delta", {"n": 2}),
        (5, "message.done", {"n": 5}),
    ]
    assert await store.list_events(conversation.id, after_seq=5) == []


@pytest.mark.parametrize("records", [[record(2)], [record(1), record(3)], [record(1, 0)]])
async def test_events_that_leave_a_gap_or_overlap_are_refused_whole(
    store: ConversationStore, backend: Backend, records: list[EventRecord]
) -> None:
    conversation = (await turn(store)).conversation
    before = await backend.snapshot()
    with pytest.raises(Conflict):
        await store.append_events(conversation.id, records)
    assert await backend.snapshot() == before


async def test_events_of_an_unknown_conversation(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFound):
        await store.append_events("conv_missing", [record(1)])
    assert await store.list_events("conv_missing") == []


# --- idempotency keys -----------------------------------------------------------------------


async def test_an_opened_turn_counts_the_users_messages(store: ConversationStore) -> None:
    first = await turn(store, greeting="Hello!")
    await store.append_message(first.conversation.id, reply())
    second = await turn(store, conversation_id=first.conversation.id)
    third = await turn(store, conversation_id=first.conversation.id)  # no reply in between
    fresh = await turn(store, new_conversation=True)
    assert [t.user_turn for t in (first, second, third, fresh)] == [1, 2, 3, 1]


async def test_a_repeated_idempotency_key_returns_the_first_message_and_writes_nothing(
    store: ConversationStore, backend: Backend
) -> None:
    first = await turn(store, text="once", idempotency_key="k1")
    assert not first.duplicate
    before = await backend.snapshot()
    again = await turn(store, text="once", idempotency_key="k1")
    assert again.duplicate
    assert again.message == first.message
    assert again.conversation.id == first.conversation.id
    assert await backend.snapshot() == before


async def test_idempotency_keys_belong_to_one_user(store: ConversationStore) -> None:
    mine = await turn(store, user="u1", idempotency_key="same")
    theirs = await turn(store, user="u2", idempotency_key="same")
    assert not theirs.duplicate
    assert theirs.message.id != mine.message.id


async def test_a_discarded_turn_frees_its_idempotency_key(store: ConversationStore) -> None:
    first = await turn(store, idempotency_key="k1")
    await store.discard_turn(first)
    retried = await turn(store, idempotency_key="k1")
    assert not retried.duplicate
    assert retried.message.id != first.message.id


# --- versioned conversation state -----------------------------------------------------------


async def test_state_is_absent_until_put_then_versioned_from_1(store: ConversationStore) -> None:
    opened = await turn(store)
    conversation = opened.conversation.id
    assert await store.get_state(conversation, "behaviour:alice") is None

    first = await store.put_state(conversation, "behaviour:alice", {"mood": "happy"}, None)
    second = await store.put_state(conversation, "behaviour:alice", {"mood": "hurt"}, 1)

    assert (first.version, first.value) == (1, {"mood": "happy"})
    assert (second.version, second.value) == (2, {"mood": "hurt"})
    assert await store.get_state(conversation, "behaviour:alice") == second


async def test_a_put_from_a_stale_version_is_a_state_conflict_and_changes_nothing(
    store: ConversationStore, backend: Backend
) -> None:
    conversation = (await turn(store)).conversation.id
    await store.put_state(conversation, "k", {"n": 1}, None)
    await store.put_state(conversation, "k", {"n": 2}, 1)
    before = await backend.snapshot()

    with pytest.raises(StateConflict) as stale:
        await store.put_state(conversation, "k", {"n": 99}, 1)
    with pytest.raises(StateConflict):
        await store.put_state(conversation, "k", {"n": 99}, None)  # "create" when it exists
    with pytest.raises(StateConflict):
        await store.put_state(conversation, "other", {"n": 99}, 3)  # a version that never was

    assert stale.value.context["found"] == 2
    assert await backend.snapshot() == before


async def test_only_one_of_two_racing_writers_of_a_version_wins(store: ConversationStore) -> None:
    conversation = (await turn(store)).conversation.id
    await store.put_state(conversation, "k", {"n": 0}, None)

    results = await asyncio.gather(
        store.put_state(conversation, "k", {"n": "a"}, 1),
        store.put_state(conversation, "k", {"n": "b"}, 1),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["StateConflict", "VersionedState"]
    stored = await store.get_state(conversation, "k")
    assert stored is not None
    assert stored.version == 2
    assert stored in results


async def test_states_are_kept_per_conversation_and_key(store: ConversationStore) -> None:
    one = (await turn(store, user="u1")).conversation.id
    two = (await turn(store, user="u2")).conversation.id
    await store.put_state(one, "behaviour:alice", {"who": "one-alice"}, None)
    await store.put_state(one, "behaviour:bob", {"who": "one-bob"}, None)
    await store.put_state(two, "behaviour:alice", {"who": "two-alice"}, None)

    found = [
        await store.get_state(conversation, key)
        for conversation, key in [
            (one, "behaviour:alice"),
            (one, "behaviour:bob"),
            (two, "behaviour:alice"),
        ]
    ]
    assert [s.value["who"] for s in found if s is not None] == ["one-alice", "one-bob", "two-alice"]


async def test_state_of_an_unknown_conversation_is_refused_and_stores_nothing(
    store: ConversationStore, backend: Backend
) -> None:
    await turn(store)
    before = await backend.snapshot()
    with pytest.raises(ConversationNotFound):
        await store.put_state("conv_missing", "k", {"n": 1}, None)
    assert await store.get_state("conv_missing", "k") is None
    assert await backend.snapshot() == before


@pytest.mark.parametrize("value", [{"when": datetime(2024, 1, 1, tzinfo=UTC)}, {"x": float("nan")}])
async def test_a_state_that_is_not_json_data_is_invalid_input(
    store: ConversationStore, backend: Backend, value: dict[str, Any]
) -> None:
    conversation = (await turn(store)).conversation.id
    before = await backend.snapshot()
    with pytest.raises(InvalidInput):
        await store.put_state(conversation, "k", value, None)
    assert await backend.snapshot() == before


async def test_state_goes_with_a_discarded_new_conversation(store: ConversationStore) -> None:
    opened = await turn(store)
    await store.put_state(opened.conversation.id, "k", {"n": 1}, None)
    await store.discard_turn(opened)
    assert await store.get_state(opened.conversation.id, "k") is None


# --- groups -------------------------------------------------------------------------------


async def test_a_group_keeps_its_members_participants_seed_and_greetings(
    store: ConversationStore,
) -> None:
    conversation = await store.create_group(
        owner="u1",
        characters=["alice", "bob"],
        participants=["u2", "u1"],  # the owner among them is no participant
        greetings=[("alice", "Hi all!")],
        seed="s",
    )
    group = await store.get_group(conversation.id)
    assert group is not None
    assert [(m.character_id, m.muted) for m in group.members] == [("alice", False), ("bob", False)]
    assert (group.participants, group.seed) == (("u2",), "s")
    [greeting] = await store.recent_messages(conversation.id, limit=5)
    assert (greeting.role, greeting.content, greeting.speaker) == (
        Role.ASSISTANT,
        "Hi all!",
        "alice",
    )

    await store.set_member_muted(conversation.id, "bob", True)
    group = await store.get_group(conversation.id)
    assert group is not None
    assert group.members[1].muted
    with pytest.raises(ConversationNotFound):
        await store.set_member_muted(conversation.id, "carol", True)


async def test_participants_write_to_a_group_and_outsiders_cannot(store: ConversationStore) -> None:
    conversation = await store.create_group(
        owner="u1", characters=["alice", "bob"], participants=["u2"]
    )
    opened = await turn(
        store, "u2", "alice", "hello", conversation_id=conversation.id, speaker="u2", group=True
    )
    assert (opened.conversation.id, opened.message.speaker) == (conversation.id, "u2")
    with pytest.raises(ConversationNotFound):
        await turn(store, "u3", "alice", "hello", conversation_id=conversation.id, group=True)
    with pytest.raises(ConversationNotFound):  # a group's conversation takes no 1:1 turn
        await turn(store, "u1", "alice", "hello", conversation_id=conversation.id)
    # The owner's one-to-one chat with a member is another conversation.
    one_to_one = await turn(store, "u1", "alice", "hello")
    assert one_to_one.conversation.id != conversation.id
    assert await store.get_group(one_to_one.conversation.id) is None


async def test_a_group_needs_two_different_characters(store: ConversationStore) -> None:
    for characters in (["alice"], ["alice", "alice"], []):
        with pytest.raises(InvalidInput):
            await store.create_group(owner="u1", characters=characters)


# --- redo: regenerate, swipes, edit ---------------------------------------------------------


async def reopen(store: ConversationStore, opened: OpenedTurn, **kwargs: Any) -> OpenedTurn:
    return await store.reopen_turn(
        opened.conversation.id, external_user_id="u1", character_id="alice", **kwargs
    )


def swipe(text: str, group: str | None) -> NewMessage:
    return NewMessage(Role.ASSISTANT, text, swipe_of=group)


async def test_a_regenerated_reply_replaces_the_last_in_history_and_is_kept(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="question")
    first = await store.append_message(opened.conversation.id, reply("first answer"))

    again = await reopen(store, opened, expected=first.id)
    assert again.reopened
    assert not again.duplicate
    assert again.message.id == opened.message.id
    assert again.swipe_of == first.id
    second = await store.append_message(opened.conversation.id, swipe("second", again.swipe_of))

    history = await store.recent_messages(opened.conversation.id, limit=10)
    assert [m.content for m in history] == ["question", "second"]
    everything = await store.list_messages(opened.conversation.id, alternatives=True)
    assert [(m.content, m.hidden, m.swipe_of) for m in everything] == [
        ("question", False, None),
        ("first answer", True, None),
        ("second", False, first.id),
    ]
    # A third joins the same alternatives, whichever is shown.
    third_turn = await reopen(store, opened, expected=second.id)
    assert third_turn.swipe_of == first.id
    await store.append_message(opened.conversation.id, swipe("third", first.id))
    assert [m.content for m in await store.list_messages(opened.conversation.id)] == [
        "question",
        "third",
    ]


async def test_choosing_an_alternative_shows_it_and_hides_the_others(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="question")
    first = await store.append_message(opened.conversation.id, reply("first"))
    await store.append_message(opened.conversation.id, swipe("second", first.id))

    chosen = await store.choose_swipe(opened.conversation.id, first.id)
    assert (chosen.id, chosen.hidden) == (first.id, False)
    history = await store.recent_messages(opened.conversation.id, limit=10)
    assert [m.content for m in history] == ["question", "first"]

    with pytest.raises(NotFound):  # a user message is no reply's alternative
        await store.choose_swipe(opened.conversation.id, opened.message.id)
    with pytest.raises(ConversationNotFound):
        await store.choose_swipe("conv_nope", first.id)


async def test_only_the_latest_reply_s_alternatives_can_be_chosen(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="one")
    first = await store.append_message(opened.conversation.id, reply("a"))
    await store.append_message(opened.conversation.id, swipe("b", first.id))
    await turn(store, text="two", conversation_id=opened.conversation.id)
    with pytest.raises(Conflict, match="latest reply"):
        await store.choose_swipe(opened.conversation.id, first.id)


async def test_an_edit_replaces_the_text_and_hides_what_answered_the_old_one(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="typo")
    await store.append_message(opened.conversation.id, reply("answer to the typo"))

    edited = await reopen(store, opened, text="fixed", expected=opened.message.id)
    assert edited.message.content == "fixed"
    assert edited.message.edited_at is not None
    assert edited.swipe_of is None
    assert [m.content for m in await store.recent_messages(opened.conversation.id, limit=9)] == [
        "fixed"
    ]
    (stored,) = await store.list_messages(opened.conversation.id)
    assert stored.edited_at is not None
    assert stored.id == opened.message.id


async def test_a_redo_of_something_no_longer_last_is_a_conflict_and_changes_nothing(
    backend: Backend, store: ConversationStore
) -> None:
    opened = await turn(store, text="one")
    old = await store.append_message(opened.conversation.id, reply("a"))
    await turn(store, text="two", conversation_id=opened.conversation.id)
    before = await backend.snapshot()
    with pytest.raises(Conflict):
        await reopen(store, opened, expected=old.id)
    with pytest.raises(Conflict):
        await reopen(store, opened, text="edit", expected=opened.message.id)
    assert await backend.snapshot() == before


async def test_a_redo_finds_only_the_user_s_own_one_to_one_conversation(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="mine")
    for user, character in (("u2", "alice"), ("u1", "bob")):
        await turn(store, user=user, character=character)
        with pytest.raises(ConversationNotFound):
            await store.reopen_turn(
                opened.conversation.id, external_user_id=user, character_id=character
            )
    with pytest.raises(ConversationNotFound):
        await store.reopen_turn("conv_nope", external_user_id="u1", character_id="alice")


async def test_a_retried_redo_key_is_the_same_redo(store: ConversationStore) -> None:
    opened = await turn(store, text="q")
    await store.append_message(opened.conversation.id, reply("a"))
    first = await reopen(store, opened, idempotency_key="redo-1")
    assert not first.duplicate
    again = await reopen(store, opened, idempotency_key="redo-1")
    assert again.duplicate
    assert again.message.id == opened.message.id


async def test_a_regenerate_joins_the_alternatives_of_the_reply_it_names(
    store: ConversationStore,
) -> None:
    opened = await turn(store, text="question")
    answer = await store.append_message(opened.conversation.id, reply("the answer"))
    await store.append_message(opened.conversation.id, reply("a reminder posted since"))
    again = await reopen(store, opened, expected=answer.id)
    assert again.swipe_of == answer.id
