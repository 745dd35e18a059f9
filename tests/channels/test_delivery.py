"""Streaming by edits: the preview is sent at the first text, edited at most once per
interval (the platform's limit), and the final text, split, replaces it through the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.channels.delivery import ReplyStreamer, ReplyTarget
from personae.channels.errors import PlatformRateLimited, PlatformUnavailable
from personae.channels.outbox import OutboxWorker
from personae.channels.throttle import EditThrottle
from personae.core.events import DELTA, DONE, ERROR, ConversationEvent
from personae.storage.sqlite.channel_outbox import SqliteChannelOutbox
from tests.channels.recording import RecordingChannel
from tests.conftest import ManualClock

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TARGET = ReplyTarget(chat="c1", reply_id="msg_1", platform_message="p1")


def events(
    clock: ManualClock, tokens: list[str], *, step_s: float, end: str = DONE
) -> Iterator[ConversationEvent]:
    seq = 1
    for token in tokens:
        clock.now += step_s
        yield ConversationEvent("conv", seq, DELTA, {"reply_to": "msg_1", "text": token})
        seq += 1
    if end == DONE:
        text = "".join(tokens)
        yield ConversationEvent(
            "conv", seq, DONE, {"reply_to": "msg_1", "message": {"content": text}}
        )
    else:
        yield ConversationEvent("conv", seq, ERROR, {"reply_to": "msg_1", "code": "backend"})


async def stream(items: Iterator[ConversationEvent]) -> AsyncIterator[ConversationEvent]:
    for item in items:
        yield item


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[SqliteChannelOutbox]:
    async with SqliteChannelOutbox(tmp_path / "db.sqlite3") as store:
        yield store


def streamer(
    channel: RecordingChannel, outbox: SqliteChannelOutbox, clock: ManualClock, interval: float
) -> tuple[ReplyStreamer, OutboxWorker]:
    # The outbox reads the same manual clock, as a date.
    worker = OutboxWorker(channel, outbox, now=lambda: EPOCH + timedelta(seconds=clock.now))
    return ReplyStreamer(channel, worker, throttle=lambda: EditThrottle(interval, clock)), worker


async def test_edits_are_throttled_to_one_per_interval(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel()
    s, worker = streamer(channel, outbox, clock, interval=1.0)
    tokens = [f" t{i}" for i in range(50)]  # 50 tokens, 0.1 s apart: 5 s of streaming
    await s.deliver(TARGET, stream(events(clock, tokens, step_s=0.1)))
    previews = list(channel.calls)
    assert previews[0] == ("send", "c1", "t0")
    assert 4 <= len(previews) <= 6  # one per second of streaming, not one per token
    await worker.drain()
    assert channel.calls[-1] == ("edit", "c1", "1", "".join(tokens).strip())


async def test_a_rate_limited_edit_waits_retry_after(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel()
    s, worker = streamer(channel, outbox, clock, interval=0.5)
    channel.faults.extend([PlatformRateLimited("429", retry_after=100)])
    await s.deliver(TARGET, stream(events(clock, [" a"] * 40, step_s=0.5)))
    assert channel.calls == []  # the first send met the 429; 20 s later still no preview
    assert await worker.drain() == 0  # nor the final text: the limit is the bot's
    clock.now += 81  # the 429 came at 0.5 s: the pause ends at 100.5 s
    assert await worker.drain() == 1
    assert channel.calls == [("send", "c1", ("a " * 40).strip())]


async def test_a_broken_preview_still_delivers_the_final_text(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel()
    s, worker = streamer(channel, outbox, clock, interval=0.1)
    channel.faults.append(PlatformUnavailable("down"))
    await s.deliver(TARGET, stream(events(clock, [" one", " two"], step_s=1)))
    await worker.drain()
    assert channel.calls == [("send", "c1", "one two")]


async def test_a_long_reply_streams_into_the_first_part_then_adds_the_rest(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel(max_chars=4096)
    s, worker = streamer(channel, outbox, clock, interval=1.0)
    tokens = [f" Sentence {i} of a very long answer." for i in range(400)]  # ~13,000 chars
    await s.deliver(TARGET, stream(events(clock, tokens, step_s=0.05)))
    assert all(len(c[-1]) <= 4096 for c in channel.calls)
    await worker.drain()
    final = channel.calls[-4:]
    assert final[0][0] == "edit"
    assert [c[0] for c in final[1:]] == ["send"] * 3
    assert " ".join(c[-1] for c in final) == "".join(tokens).strip()


async def test_a_platform_without_edits_gets_only_the_final_text(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel(edits=False)
    s, worker = streamer(channel, outbox, clock, interval=0.0)
    await s.deliver(TARGET, stream(events(clock, [" Hi", " there."], step_s=0.5)))
    await worker.drain()
    assert channel.calls == [("send", "c1", "Hi there.")]
    assert channel.typings >= 1


async def test_a_failed_turn_tells_the_user(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel(edits=False)
    s, worker = streamer(channel, outbox, clock, interval=0.0)
    await s.deliver(TARGET, stream(events(clock, [], step_s=0, end=ERROR)))
    await worker.drain()
    assert channel.sent_texts() == [
        "Sorry, I could not answer just now. Please try again in a moment."
    ]


async def test_events_of_other_turns_are_ignored(
    outbox: SqliteChannelOutbox, clock: ManualClock
) -> None:
    channel = RecordingChannel(edits=False)
    s, worker = streamer(channel, outbox, clock, interval=0.0)
    other = ConversationEvent("conv", 1, DONE, {"reply_to": "msg_0", "message": {"content": "x"}})
    mine = list(events(clock, [" mine"], step_s=0))
    await s.deliver(TARGET, stream(iter([other, *mine])))
    await worker.drain()
    assert channel.sent_texts() == ["mine"]
