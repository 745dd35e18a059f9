"""The reminder store on real SQLite: the per-user limit, listing and cancelling, and claims
that hand a due reminder to one dispatcher only, across stores and after a lost claim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.core.reminder_store import NewReminder
from personae.errors import InvalidInput, StorageError
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.reminders import SqliteReminderStore
from personae.storage.sqlite.user_data import SqliteUserData

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


CONVERSATIONS: dict[str, str] = {}  # user -> a conversation of theirs with aria


def new(
    text: str = "stretch", *, user: str = "sam", after_s: float = 60, **extra: str
) -> NewReminder:
    return NewReminder(
        user=user,
        character_id="aria",
        conversation_id=CONVERSATIONS[user],
        text=text,
        due_at=NOW + timedelta(seconds=after_s),
        **extra,
    )


async def with_conversations(path: Path) -> None:
    async with SqliteConversationStore(path) as conversations:
        for user in ("sam", "eve"):
            opened = await conversations.open_turn(
                external_user_id=user, character_id="aria", text="Hi"
            )
            CONVERSATIONS[user] = opened.conversation.id


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteReminderStore]:
    path = tmp_path / "personae.sqlite3"
    async with SqliteReminderStore(path) as opened:
        await with_conversations(path)
        yield opened


async def test_a_reminder_is_stored_and_listed_soonest_first(store: SqliteReminderStore) -> None:
    later = await store.add(new("later", after_s=600), now=NOW, max_pending=5)
    sooner = await store.add(
        new("sooner", after_s=60, channel="telegram", chat="42"), now=NOW, max_pending=5
    )
    await store.add(new("not mine", user="eve"), now=NOW, max_pending=5)
    listed = await store.pending("sam")
    assert [r.id for r in listed] == [sooner.id, later.id]
    assert listed[0].due_at == NOW + timedelta(seconds=60)
    assert (listed[0].channel, listed[0].chat) == ("telegram", "42")
    assert listed[0].state == "pending"
    assert await store.pending("sam", "bram") == []
    assert await store.next_due_at() == NOW + timedelta(seconds=60)


async def test_the_per_user_limit_refuses_and_stores_nothing(store: SqliteReminderStore) -> None:
    for index in range(3):
        await store.add(new(f"r{index}"), now=NOW, max_pending=3)
    with pytest.raises(InvalidInput, match="you have 3 reminders waiting"):
        await store.add(new("one too many"), now=NOW, max_pending=3)
    assert [r.text for r in await store.pending("sam")] == ["r0", "r1", "r2"]
    # Another user has a limit of their own.
    await store.add(new("eve's", user="eve"), now=NOW, max_pending=3)


async def test_cancel_by_short_id_only_the_users_own(store: SqliteReminderStore) -> None:
    reminder = await store.add(new(), now=NOW, max_pending=5)
    assert len(reminder.short_id) == 6
    assert await store.cancel("eve", reminder.short_id) is None  # not hers
    assert await store.cancel("sam", "abc") is None  # too short to name one
    assert await store.cancel("sam", "zz'; --") is None
    cancelled = await store.cancel("sam", reminder.short_id.upper())
    assert cancelled is not None
    assert cancelled.id == reminder.id
    assert await store.pending("sam") == []
    assert await store.cancel("sam", reminder.id) is None  # already cancelled
    assert await store.claim_due(NOW + timedelta(days=1), lease_s=60) == []


async def test_a_due_reminder_is_claimed_once(store: SqliteReminderStore) -> None:
    due = await store.add(new(after_s=10), now=NOW, max_pending=5)
    await store.add(new("not yet", after_s=3600), now=NOW, max_pending=5)
    assert await store.claim_due(NOW, lease_s=60) == []
    at = NOW + timedelta(seconds=10)
    claimed = await store.claim_due(at, lease_s=60)
    assert [(r.id, r.state, r.attempts) for r in claimed] == [(due.id, "claimed", 1)]
    assert await store.claim_due(at, lease_s=60) == []  # within the lease: nobody else
    assert await store.cancel("sam", due.short_id) is None  # being delivered: too late
    await store.delivered(due.id, at)
    assert await store.claim_due(at + timedelta(minutes=30), lease_s=60) == []
    assert [r.text for r in await store.pending("sam")] == ["not yet"]


async def test_two_stores_on_one_file_never_claim_the_same(tmp_path: Path) -> None:
    path = tmp_path / "personae.sqlite3"
    async with SqliteReminderStore(path) as one, SqliteReminderStore(path) as two:
        await with_conversations(path)
        for index in range(20):
            await one.add(new(f"r{index}"), now=NOW, max_pending=100)
        at = NOW + timedelta(minutes=5)
        first, second = await asyncio.gather(
            one.claim_due(at, lease_s=60, limit=15), two.claim_due(at, lease_s=60, limit=15)
        )
        ids = [r.id for r in first + second]
        assert len(ids) == len(set(ids)) == 20


async def test_a_lost_claim_is_taken_again_after_the_lease(store: SqliteReminderStore) -> None:
    reminder = await store.add(new(after_s=0), now=NOW, max_pending=5)
    assert len(await store.claim_due(NOW, lease_s=60)) == 1
    assert await store.claim_due(NOW + timedelta(seconds=59), lease_s=60) == []
    (again,) = await store.claim_due(NOW + timedelta(seconds=60), lease_s=60)
    assert again.id == reminder.id
    assert again.attempts == 2


async def test_retry_later_and_give_up(store: SqliteReminderStore) -> None:
    reminder = await store.add(new(after_s=0), now=NOW, max_pending=5)
    await store.claim_due(NOW, lease_s=60)
    retry_at = NOW + timedelta(seconds=30)
    await store.retry_later(reminder.id, retry_at, "the hub was busy")
    assert await store.next_due_at() == retry_at
    assert await store.claim_due(NOW + timedelta(seconds=29), lease_s=60) == []
    (again,) = await store.claim_due(retry_at, lease_s=60)
    assert again.attempts == 2
    await store.give_up(reminder.id, retry_at, "the conversation is gone")
    assert await store.pending("sam") == []
    assert await store.next_due_at() is None


async def test_erasing_the_user_erases_their_reminders(tmp_path: Path) -> None:
    path = tmp_path / "personae.sqlite3"
    async with SqliteReminderStore(path) as store:
        await with_conversations(path)
        await store.add(new(), now=NOW, max_pending=5)
        await store.add(new(user="eve"), now=NOW, max_pending=5)
        async with SqliteUserData(path) as users:
            await users.erase_user("sam")
        assert await store.pending("sam") == []
        assert len(await store.pending("eve")) == 1


async def test_a_reminder_needs_an_existing_conversation(store: SqliteReminderStore) -> None:
    orphan = NewReminder("sam", "aria", "conv_missing", "x", NOW)
    with pytest.raises(StorageError):
        await store.add(orphan, now=NOW, max_pending=5)
    assert await store.pending("sam") == []
