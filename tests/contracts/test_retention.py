"""Retention purges of messages and audit rows, on SQLite and on PostgreSQL alike, with a
manual clock: what is older than the configured days goes, what is newer stays, and a kind
that fails does not stop the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from personae.core.ports import AuditLog, ConversationStore
from personae.core.retention import Retained, RetentionFailed, RetentionJob
from personae.core.types import AuditEntry, EventRecord, NewMessage, Role
from personae.errors import InvalidInput
from tests.contracts.shared_stores import Backend, Retention


@dataclass
class Stores:
    backend: Backend
    conversations: ConversationStore
    audit: AuditLog
    messages_retention: Retention
    audit_retention: Retention


@pytest.fixture
async def stores(shared_backend: Backend) -> AsyncIterator[Stores]:
    b = shared_backend
    async with (
        b.conversations() as conversations,
        b.audit() as audit,
        b.message_retention() as messages_retention,
        b.audit_retention() as audit_retention,
    ):
        yield Stores(b, conversations, audit, messages_retention, audit_retention)


class ManualClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def chat(stores: Stores, user: str, text: str) -> str:
    opened = await stores.conversations.open_turn(
        external_user_id=user, character_id="aria", text=text
    )
    reply = NewMessage(role=Role.ASSISTANT, content=f"re: {text}")
    await stores.conversations.append_message(opened.conversation.id, reply)
    return opened.conversation.id


async def test_messages_and_audit_rows_older_than_their_days_are_purged(stores: Stores) -> None:
    clock = ManualClock()
    purged: list[tuple[str, int]] = []
    job = RetentionJob(
        {
            "messages": Retained(stores.messages_retention, days=30),
            "audit": Retained(stores.audit_retention, days=90),
        },
        clock=clock,
        on_purged=lambda kind, count: purged.append((kind, count)),
    )
    old = await chat(stores, "sam", "an old message")
    long_ago = clock.now - timedelta(days=100)
    await stores.audit.record(
        [
            AuditEntry("key.create", "admin", at=long_ago),
            AuditEntry("user.export", "admin", at=clock.now - timedelta(days=10)),
        ]
    )
    assert await job.run_once() == {"messages": 0, "audit": 1}  # nothing 30 days old yet
    assert len(await stores.conversations.recent_messages(old, limit=10)) == 2

    clock.now += timedelta(days=31)  # the chat is 31 days old now
    await stores.audit.record([AuditEntry("key.revoke", "admin", at=clock.now)])
    counts = await job.run_once()
    assert counts == {"messages": 2, "audit": 0}  # user.export is 41 days old: kept (90)
    assert await stores.conversations.get_conversation(old) is None  # emptied and idle: gone
    assert [e.action for e in await stores.audit.query()] == ["user.export", "key.revoke"]
    assert purged == [("messages", 0), ("audit", 1), ("messages", 2), ("audit", 0)]
    rows = await stores.backend.snapshot()
    assert rows["messages"] == []
    assert rows["conversations"] == []
    assert len(rows["users"]) == 1  # the user stays: erasure is DELETE /api/users/{id}


class Broken:
    async def purge_before(self, moment: datetime) -> int:
        raise OSError("disk I/O error")


async def test_a_failing_kind_is_reported_after_the_others_ran(stores: Stores) -> None:
    clock = ManualClock()
    await stores.audit.record([AuditEntry("key.create", "admin", at=clock.now)])
    job = RetentionJob(
        {"memories": Retained(Broken(), days=1), "audit": Retained(stores.audit_retention, days=1)},
        clock=clock,
    )
    clock.now += timedelta(days=2)
    with pytest.raises(RetentionFailed, match="memories"):
        await job.run_once()
    assert await stores.audit.query() == []  # the audit purge still ran


async def test_a_naive_date_is_refused(stores: Stores) -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        await stores.messages_retention.purge_before(datetime(2020, 1, 1))
    with pytest.raises(InvalidInput, match="timezone"):
        await stores.audit_retention.purge_before(datetime(2020, 1, 1))


async def test_a_purge_keeps_what_is_newer_in_the_same_conversation(stores: Stores) -> None:
    store = stores.conversations
    opened = await store.open_turn(
        external_user_id="sam", character_id="aria", text="old", idempotency_key="k-old"
    )
    cid = opened.conversation.id
    await store.put_state(cid, "mood", {"v": 1}, None)
    await store.append_events(cid, [EventRecord(1, 1, "message.ack", {"text": "old"})])
    await asyncio.sleep(0.01)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await store.open_turn(
        external_user_id="sam", character_id="aria", text="new", idempotency_key="k-new"
    )
    await store.append_events(cid, [EventRecord(2, 2, "message.ack", {"text": "new"})])

    assert await stores.messages_retention.purge_before(cutoff) == 1

    assert [m.content for m in await store.list_messages(cid)] == ["new"]
    assert [e.seq for e in await store.list_events(cid, after_seq=0)] == [2]
    assert await store.get_conversation(cid) is not None  # it moved since the cutoff
    assert await store.get_state(cid, "mood") is not None
    rows = await stores.backend.snapshot()
    assert [key for key in repr(rows["idempotency_keys"]).split("'") if key.startswith("k-")] == [
        "k-new"
    ]  # the old message's key went with it
    assert await stores.messages_retention.purge_before(cutoff) == 0  # nothing more to do
