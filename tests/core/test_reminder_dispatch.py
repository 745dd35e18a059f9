"""The reminder dispatcher on the real SQLite store, with a delivery that fails as scripted:
retries with a doubling delay, giving up after the last attempt or at once when the
conversation is gone, and waking early for a reminder added meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.core.reminder_dispatch import DispatchPolicy, ReminderDispatcher
from personae.core.reminder_store import NewReminder, Reminder
from personae.errors import ConversationNotFound
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.reminders import SqliteReminderStore
from tests.skills.reminder_rig import Clock


class Deliveries:
    """Records each delivery; raises the scripted failures first."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.delivered: list[tuple[str, int]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, reminder: Reminder) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append((reminder.text, reminder.attempts))
        self.arrived.set()


CONVERSATION: list[str] = []  # the fixture's conversation, which reminders belong to


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteReminderStore]:
    path = tmp_path / "personae.sqlite3"
    async with SqliteReminderStore(path) as opened, SqliteConversationStore(path) as chats:
        turn = await chats.open_turn(external_user_id="sam", character_id="aria", text="Hi")
        CONVERSATION[:] = [turn.conversation.id]
        yield opened


def reminder(text: str, due: datetime) -> NewReminder:
    return NewReminder("sam", "aria", CONVERSATION[0], text, due)


async def add(store: SqliteReminderStore, clock: Clock, text: str, after_s: float) -> None:
    due = clock.now + timedelta(seconds=after_s)
    await store.add(reminder(text, due), now=clock.now, max_pending=100)


async def test_a_failed_delivery_is_retried_with_a_doubling_delay(
    store: SqliteReminderStore,
) -> None:
    clock = Clock()
    deliveries = Deliveries(RuntimeError("hub down"), RuntimeError("hub down"))
    policy = DispatchPolicy(retry_initial_s=10, max_attempts=5)
    dispatcher = ReminderDispatcher(store, deliveries, policy, now=clock)
    await add(store, clock, "stretch", 0)
    assert await dispatcher.tick() == 0
    assert await store.next_due_at() == clock.now + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert await dispatcher.tick() == 0
    assert await store.next_due_at() == clock.now + timedelta(seconds=20)  # doubled
    clock.advance(seconds=20)
    assert await dispatcher.tick() == 1
    assert deliveries.delivered == [("stretch", 3)]


async def test_it_gives_up_after_the_last_attempt(store: SqliteReminderStore) -> None:
    clock = Clock()
    deliveries = Deliveries(*(RuntimeError("down") for _ in range(3)))
    policy = DispatchPolicy(retry_initial_s=1, max_attempts=2)
    dispatcher = ReminderDispatcher(store, deliveries, policy, now=clock)
    await add(store, clock, "stretch", 0)
    await dispatcher.tick()
    clock.advance(seconds=1)
    await dispatcher.tick()
    assert dispatcher.failed == 1
    assert await store.next_due_at() is None
    assert await store.pending("sam") == []
    assert deliveries.delivered == []


async def test_a_missing_conversation_is_given_up_at_once(store: SqliteReminderStore) -> None:
    clock = Clock()
    deliveries = Deliveries(ConversationNotFound("conv_1"))
    dispatcher = ReminderDispatcher(store, deliveries, now=clock)
    await add(store, clock, "stretch", 0)
    assert await dispatcher.tick() == 0
    assert dispatcher.failed == 1
    assert await store.pending("sam") == []


async def test_a_batch_larger_than_one_claim_is_all_delivered(store: SqliteReminderStore) -> None:
    clock = Clock()
    deliveries = Deliveries()
    dispatcher = ReminderDispatcher(store, deliveries, DispatchPolicy(batch=3), now=clock)
    for index in range(7):
        await add(store, clock, f"r{index}", 0)
    assert await dispatcher.tick() == 7
    assert sorted(text for text, _ in deliveries.delivered) == [f"r{i}" for i in range(7)]


async def test_the_loop_delivers_overdue_ones_at_start_and_wakes_for_new_ones(
    store: SqliteReminderStore,
) -> None:
    deliveries = Deliveries()
    wakeup = asyncio.Event()
    # A long poll: only the start-up pass and the wake-up can deliver within the test.
    dispatcher = ReminderDispatcher(
        store, deliveries, DispatchPolicy(poll_interval_s=60), wakeup=wakeup
    )
    now = datetime.now(UTC)
    overdue = reminder("overdue", now - timedelta(hours=1))
    await store.add(overdue, now=now, max_pending=10)
    task = asyncio.create_task(dispatcher.run_forever())
    try:
        async with asyncio.timeout(5):
            await deliveries.arrived.wait()
            deliveries.arrived.clear()
            soon = reminder("soon", datetime.now(UTC))
            await store.add(soon, now=datetime.now(UTC), max_pending=10)
            wakeup.set()  # what the skill does after adding one
            await deliveries.arrived.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [text for text, _ in deliveries.delivered] == ["overdue", "soon"]
