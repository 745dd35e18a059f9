"""The UserData contract, on SQLite and on PostgreSQL alike: an export holds everything the
conversation store keeps of one user, in one shape whatever the backend; erasure deletes it
all, counts it, and leaves every other user's rows as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from personae.core.ports import ConversationStore, UserData
from personae.core.types import EventRecord, NewMessage, Role
from tests.contracts.shared_stores import Backend
from tests.sqlite_snapshot import Snapshot

ZERO = {
    "users": 0,
    "conversations": 0,
    "messages": 0,
    "events": 0,
    "conversation_state": 0,
    "idempotency_keys": 0,
}


@dataclass
class Stores:
    backend: Backend
    conversations: ConversationStore
    users: UserData


@pytest.fixture
async def stores(shared_backend: Backend) -> AsyncIterator[Stores]:
    async with shared_backend.conversations() as conversations, shared_backend.users() as users:
        yield Stores(shared_backend, conversations, users)


async def chat(stores: Stores, user: str, character: str, text: str, **kwargs: Any) -> str:
    """A turn and its reply, a state and two event records; the conversation's id."""
    store = stores.conversations
    opened = await store.open_turn(
        external_user_id=user, character_id=character, text=text, **kwargs
    )
    cid = opened.conversation.id
    reply = NewMessage(Role.ASSISTANT, f"re: {text}", model="fake", completion_tokens=3)
    await store.append_message(cid, reply)
    known = await store.get_state(cid, "mood")
    await store.put_state(cid, "mood", {"level": text}, None if known is None else known.version)
    conversation = await store.get_conversation(cid)
    assert conversation is not None
    last = conversation.last_event_seq
    await store.append_events(
        cid,
        [
            EventRecord(last + 1, last + 1, "message.ack", {"text": text}),
            EventRecord(last + 2, last + 4, "message.delta", {"chunks": ["a", "b", "c"]}),
        ],
    )
    return cid


def is_utc_text(value: object) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).utcoffset() is not None


def rows_mentioning(snapshot: Snapshot, needle: str) -> list[str]:
    return [table for table, rows in snapshot.items() if needle in repr(rows)]


async def test_an_unknown_user_has_nothing_to_export_or_erase(stores: Stores) -> None:
    await chat(stores, "bob", "aria", "hello")
    before = await stores.backend.snapshot()
    assert await stores.users.export_user("nobody") is None
    assert await stores.users.erase_user("nobody") == ZERO
    assert await stores.backend.snapshot() == before


async def test_the_export_holds_every_conversation_message_event_and_state(
    stores: Stores,
) -> None:
    first = await chat(stores, "alice", "aria", "first", idempotency_key="k1")
    await chat(stores, "alice", "aria", "second")
    other = await chat(stores, "alice", "mira", "elsewhere")
    await chat(stores, "bob", "aria", "bob's secret")
    user = await stores.conversations.get_user("alice")
    assert user is not None

    exported = await stores.users.export_user("alice")

    assert exported is not None
    assert set(exported) == {"user", "conversations"}
    assert exported["user"]["id"] == user.id
    assert exported["user"]["external_id"] == "alice"
    assert datetime.fromisoformat(exported["user"]["created_at"]) == user.created_at
    conversations = exported["conversations"]
    assert [c["id"] for c in conversations] == [first, other]  # oldest first
    one = conversations[0]
    assert set(one) == {
        "id",
        "character_id",
        "created_at",
        "updated_at",
        "last_seq",
        "messages",
        "events",
        "state",
    }
    assert (one["character_id"], one["last_seq"]) == ("aria", 4)
    stored = await stores.conversations.list_messages(first, limit=100)
    assert [m["id"] for m in one["messages"]] == [m.id for m in stored]
    assert [(m["seq"], m["role"], m["content"]) for m in one["messages"]] == [
        (1, "user", "first"),
        (2, "assistant", "re: first"),
        (3, "user", "second"),
        (4, "assistant", "re: second"),
    ]
    assert set(one["messages"][1]) == {
        "id",
        "seq",
        "role",
        "content",
        "status",
        "created_at",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "character_version",
        "speaker",
    }
    assert (one["messages"][1]["model"], one["messages"][1]["completion_tokens"]) == ("fake", 3)
    assert one["messages"][1]["status"] == "complete"
    assert one["events"][:2] == [
        {
            "seq": 1,
            "last_seq": 1,
            "event": "message.ack",
            "payload": {"text": "first"},
            "created_at": one["events"][0]["created_at"],
        },
        {
            "seq": 2,
            "last_seq": 4,
            "event": "message.delta",
            "payload": {"chunks": ["a", "b", "c"]},
            "created_at": one["events"][1]["created_at"],
        },
    ]
    assert [e["seq"] for e in one["events"]] == [1, 2, 5, 6]
    [state] = one["state"]
    assert (state["key"], state["version"], state["value"]) == ("mood", 2, {"level": "second"})
    # Times are ISO 8601 text with their offset, on either backend.
    times = [one["created_at"], one["updated_at"], state["updated_at"]]
    times += [m["created_at"] for m in one["messages"]] + [e["created_at"] for e in one["events"]]
    assert all(is_utc_text(t) for t in times), times
    assert "bob's secret" not in repr(exported)


async def test_erasure_deletes_the_user_with_everything_and_counts_it(stores: Stores) -> None:
    await chat(stores, "alice", "aria", "first", idempotency_key="k1")
    await chat(stores, "alice", "mira", "second")
    await chat(stores, "bob", "aria", "bob stays")
    bob_before = await stores.users.export_user("bob")

    erased = await stores.users.erase_user("alice")

    assert erased == {
        "users": 1,
        "conversations": 2,
        "messages": 4,
        "events": 4,
        "conversation_state": 2,
        "idempotency_keys": 1,
    }
    assert await stores.users.export_user("alice") is None
    assert await stores.conversations.get_user("alice") is None
    after = await stores.backend.snapshot()
    for needle in ("alice", "first", "second", "k1"):
        assert rows_mentioning(after, needle) == [], needle
    assert await stores.users.export_user("bob") == bob_before  # untouched
    assert await stores.users.erase_user("alice") == ZERO  # again: harmless


async def test_a_group_the_user_joined_stays_without_them(stores: Stores) -> None:
    group = await stores.conversations.create_group(
        owner="bob", characters=["aria", "mira"], participants=["alice"]
    )
    await stores.conversations.open_turn(
        external_user_id="bob",
        character_id="aria",
        text="hi all",
        conversation_id=group.id,
        group=True,
    )
    erased = await stores.users.erase_user("alice")
    assert erased["users"] == 1
    assert erased["conversations"] == 0  # the group is bob's
    found = await stores.conversations.get_group(group.id)
    assert found is not None
    assert "alice" not in repr(found)
    assert await stores.users.export_user("bob") is not None
