"""The durable outbox on real SQLite: order within a chat, 429 pauses, backoff, giving up,
edits whose message is gone, and nothing lost across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.channels.errors import (
    MessageGone,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
)
from personae.channels.outbox import OutboxPolicy, OutboxWorker
from personae.core.breaker import BreakerState
from personae.core.channels import NewOutboxItem
from personae.storage.sqlite.channel_outbox import SqliteChannelOutbox
from tests.channels.helpers import eventually
from tests.channels.recording import RecordingChannel


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteChannelOutbox]:
    async with SqliteChannelOutbox(tmp_path / "db.sqlite3") as outbox:
        yield outbox


def item(chat: str, text: str, key: str | None = None) -> NewOutboxItem:
    return NewOutboxItem(channel="rec", chat=chat, text=text, dedupe_key=key or f"{chat}:{text}")


def worker(
    channel: RecordingChannel, store: SqliteChannelOutbox, clock: Clock, **policy: float
) -> OutboxWorker:
    return OutboxWorker(
        channel,
        store,
        OutboxPolicy(**policy),  # type: ignore[arg-type]
        now=clock,
        uniform=lambda low, high: high,  # the top of each jitter window: predictable
        clock=lambda: clock.now.timestamp(),  # the circuit breaker's clock moves with it
    )


async def test_items_go_out_in_order_per_chat_and_a_repeated_key_is_ignored(
    store: SqliteChannelOutbox,
) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock)
    await w.enqueue([item("a", "1"), item("b", "1"), item("a", "2")])
    await w.enqueue([item("a", "1")])  # a replayed event stream: same dedupe key
    assert await w.drain() == 3
    assert [(c[1], c[2]) for c in channel.calls] == [("a", "1"), ("b", "1"), ("a", "2")]
    assert await store.pending("rec") == 0


async def test_a_failed_part_holds_back_the_chats_later_parts_only(
    store: SqliteChannelOutbox,
) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock, backoff_initial_s=10)
    channel.faults.append(PlatformUnavailable("503"))
    await w.enqueue([item("a", "part 1"), item("a", "part 2"), item("b", "other")])
    assert await w.drain() == 1
    assert channel.sent_texts() == ["other"]  # chat a waits: part 2 must not overtake part 1
    clock.move(9)
    assert await w.drain() == 0
    clock.move(1)
    assert await w.drain() == 2
    assert channel.sent_texts() == ["other", "part 1", "part 2"]


async def test_backoff_doubles_up_to_the_maximum_then_gives_up(
    store: SqliteChannelOutbox,
) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock, backoff_initial_s=1, backoff_max_s=4, max_attempts=5)
    await w.enqueue([item("a", "doomed")])
    waits = []
    for _ in range(5):
        channel.faults.append(PlatformUnavailable("down"))
        await w.drain()
        due = await store.next_due_at("rec")
        if due is None:
            break
        waits.append((due - clock.now).total_seconds())
        clock.now = due
    assert waits == [1, 2, 4, 4]
    assert await store.pending("rec") == 0
    assert w.failed == 1
    assert channel.calls == []


async def test_429_pauses_the_whole_channel_for_retry_after(store: SqliteChannelOutbox) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock)
    channel.faults.append(PlatformRateLimited("slow down", retry_after=30))
    await w.enqueue([item("a", "x"), item("b", "y")])
    assert await w.drain() == 0
    assert channel.calls == []  # b was not tried either: the limit is the bot's
    await w.enqueue([item("c", "z")])  # new work does not lift the pause
    assert await w.drain() == 0
    clock.move(30)
    assert await w.drain() == 3


async def test_a_refusal_is_given_up_at_once_and_an_edit_of_a_gone_message_becomes_a_send(
    store: SqliteChannelOutbox,
) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock)
    channel.faults.extend([PlatformRejected("400 chat not found"), MessageGone("gone")])
    edit = NewOutboxItem("rec", "b", "final", "b:final", action="edit", target="41")
    await w.enqueue([item("a", "refused"), edit])
    assert await w.drain() == 1
    assert channel.calls == [("send", "b", "final")]
    assert w.failed == 1


async def test_reconnecting_makes_waiting_items_due_at_once(store: SqliteChannelOutbox) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock, backoff_initial_s=300)
    channel.faults.append(PlatformUnavailable("down"))
    await w.enqueue([item("a", "queued")])
    await w.drain()
    w.resume()  # the runner saw the platform come back
    assert await w.drain() == 1


async def test_the_worker_delivers_what_a_previous_process_left(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    channel = RecordingChannel()
    async with SqliteChannelOutbox(path) as first:
        channel.faults.append(PlatformUnavailable("down"))
        w = OutboxWorker(channel, first, OutboxPolicy(backoff_initial_s=0.01))
        await w.enqueue([item("a", "survives a restart")])
        await w.drain()
    async with SqliteChannelOutbox(path) as second:
        w = OutboxWorker(channel, second, OutboxPolicy())
        task = asyncio.create_task(w.run())
        try:
            await eventually(lambda: channel.calls, timeout_s=5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert channel.sent_texts() == ["survives a restart"]


async def test_failures_in_a_row_open_the_circuit_until_a_probe_gets_through(
    store: SqliteChannelOutbox,
) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(
        channel,
        store,
        clock,
        backoff_initial_s=0,
        backoff_max_s=0,
        breaker_failures=3,
        breaker_reset_s=30,
    )
    await w.enqueue([item(f"chat{i}", "hello") for i in range(6)])  # six chats, all due
    channel.faults.extend([PlatformUnavailable("down")] * 3)
    assert await w.drain() == 0
    assert w.breaker.state is BreakerState.OPEN

    channel.faults.append(PlatformUnavailable("still down"))
    clock.move(29)
    assert await w.drain() == 0
    assert len(channel.faults) == 1  # open: nothing was tried, though everything is due

    clock.move(1)
    assert await w.drain() == 0  # one probe, and it failed: open again
    assert not channel.faults
    assert w.breaker.state is BreakerState.OPEN

    clock.move(30)
    assert await w.drain() == 6  # the probe got through: closed, and the rest follow
    assert w.breaker.state is BreakerState.CLOSED
    assert await store.pending("rec") == 0


async def test_a_reconnect_lets_an_open_circuit_probe_at_once(store: SqliteChannelOutbox) -> None:
    channel, clock = RecordingChannel(), Clock()
    w = worker(channel, store, clock, backoff_initial_s=0, backoff_max_s=0, breaker_failures=1)
    await w.enqueue([item("a", "hello")])
    channel.faults.append(PlatformUnavailable("down"))
    assert await w.drain() == 0
    assert w.breaker.state is BreakerState.OPEN
    w.resume()  # the channel reconnected: the platform is back
    assert await w.drain() == 1
    assert w.breaker.state is BreakerState.CLOSED
