"""Retention on real SQLite, with a manual clock: what is older than the configured days goes,
what is newer stays, and a kind that fails does not stop the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.core.retention import Retained, RetentionFailed, RetentionJob
from personae.core.types import AuditEntry, NewMessage, Role
from personae.errors import InvalidInput
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.retention import SqliteAuditRetention, SqliteMessageRetention
from tests.sqlite_snapshot import sqlite_snapshot


@dataclass
class Stores:
    path: Path
    conversations: SqliteConversationStore
    audit: SqliteAuditLog
    messages_retention: SqliteMessageRetention
    audit_retention: SqliteAuditRetention


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    path = tmp_path / "personae.sqlite3"
    async with (
        SqliteConversationStore(path) as conversations,
        SqliteAuditLog(path) as audit,
        SqliteMessageRetention(path) as messages_retention,
        SqliteAuditRetention(path) as audit_retention,
    ):
        yield Stores(path, conversations, audit, messages_retention, audit_retention)


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
    rows = sqlite_snapshot(stores.path)
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
