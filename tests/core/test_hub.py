"""ConversationHub on the real SQLite store, the in-process bus and a scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock, LocalEventBus
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import ConversationEvent
from personae.core.hub import ConversationHub
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.sessions import SessionState
from personae.core.types import EventRecord, InboundMessage, MessageStatus, Role
from personae.errors import (
    BackendUnavailable,
    Busy,
    CharacterNotFound,
    ConversationNotFound,
    Overloaded,
)
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel
from tests.channels.helpers import eventually


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        *,
        concurrent: int = 8,
        queued: int = 16,
        bus: LocalEventBus | None = None,
    ) -> None:
        self.model = FakeChatModel()
        self.store = SqliteConversationStore(tmp_path / "hub.sqlite3")
        self.bus = bus or LocalEventBus()
        service = ChatService(
            catalog=CharacterCatalog([Character(id="aria", name="Aria", greetings=("Hi!",))]),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(),
        )
        self.hub = ConversationHub(
            service=service,
            store=self.store,
            bus=self.bus,
            lock=LocalConversationLock(),
            admission=Admission(max_concurrent=concurrent, max_queued=queued, enqueue_timeout_s=5),
        )

    def inbound(self, text: str, **kwargs: object) -> InboundMessage:
        return InboundMessage(user="sam", character_id="aria", text=text, **kwargs)  # type: ignore[arg-type]

    async def collect(
        self, conversation_id: str, *, after_seq: int = 0, until: str = "message.done"
    ) -> list[ConversationEvent]:
        events: list[ConversationEvent] = []
        async with self.hub.watch(conversation_id, "sam", after_seq=after_seq) as stream:
            async for event in stream:
                events.append(event)
                if event.event in {until, "error"}:
                    return events
        raise AssertionError("the stream ended")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    async with r.store:
        yield r
        await r.hub.close(grace_s=5)


def text_of(events: list[ConversationEvent]) -> str:
    return "".join(e.payload["text"] for e in events if e.event == "message.delta")


async def test_a_turn_numbers_its_events_without_gaps_and_logs_them(rig: Rig) -> None:
    rig.model.enqueue("Plotting a course now.", delay_s=0.01)
    accepted = await rig.hub.send(rig.inbound("Where to?"))
    assert accepted.ack_seq == 1
    assert accepted.message_seq == 2  # after the greeting
    live = await rig.collect(accepted.conversation_id)
    assert [e.seq for e in live] == list(range(1, len(live) + 1))
    assert live[0].event == "message.ack"
    assert text_of(live) == "Plotting a course now."
    assert live[-1].payload["message"]["content"] == "Plotting a course now."
    # Replayed from the store after the turn: the very same events.
    assert await rig.collect(accepted.conversation_id) == live


async def test_resume_in_the_middle_of_a_turn_has_no_gap_and_no_duplicate(rig: Rig) -> None:
    rig.model.enqueue("one two three four five six seven eight", delay_s=0.03)
    accepted = await rig.hub.send(rig.inbound("count"))
    seen: list[ConversationEvent] = []
    async with rig.hub.watch(accepted.conversation_id, "sam") as stream:
        async for event in stream:
            seen.append(event)
            if len(seen) == 4:
                break  # the device drops mid-reply
    rest = await rig.collect(accepted.conversation_id, after_seq=seen[-1].seq)
    both = seen + rest
    assert [e.seq for e in both] == list(range(1, len(both) + 1))
    assert text_of(both) == "one two three four five six seven eight"


async def test_a_retried_idempotency_key_starts_no_second_turn(rig: Rig) -> None:
    first = await rig.hub.send(rig.inbound("hello", idempotency_key="k-1"))
    await rig.collect(first.conversation_id)
    again = await rig.hub.send(rig.inbound("hello", idempotency_key="k-1"))
    assert again.duplicate
    assert (again.conversation_id, again.message_id) == (first.conversation_id, first.message_id)
    assert len(rig.model.requests) == 1
    messages = await rig.store.list_messages(first.conversation_id)
    assert [m.content for m in messages].count("hello") == 1


async def test_cancel_stops_the_turn_with_an_error_event(rig: Rig) -> None:
    rig.model.enqueue("a b c d e f g h i j k l m n o p", delay_s=0.05)
    accepted = await rig.hub.send(rig.inbound("talk"))
    events: list[ConversationEvent] = []
    async with rig.hub.watch(accepted.conversation_id, "sam") as stream:
        async for event in stream:
            events.append(event)
            if event.event == "message.delta" and event.payload["text"].strip() == "b":
                assert not rig.hub.cancel(accepted.conversation_id, "eve")  # not theirs
                assert rig.hub.cancel(accepted.conversation_id, "sam")
            if event.event in {"error", "message.done"}:
                break
    assert events[-1].event == "error"
    assert events[-1].payload["code"] == "cancelled"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    await asyncio.sleep(0)  # let the shielded partial write land
    await rig.hub.close(grace_s=1)
    stored = await rig.store.list_messages(accepted.conversation_id)
    assert stored[-1].status is MessageStatus.CANCELLED
    assert stored[-1].content.startswith("a b")


async def test_a_backend_failure_after_the_ack_keeps_the_message_and_says_so(rig: Rig) -> None:
    rig.model.enqueue("x", error=BackendUnavailable("down", backend="fake"))
    accepted = await rig.hub.send(rig.inbound("are you there?"))
    events = await rig.collect(accepted.conversation_id)
    assert [e.event for e in events] == ["message.ack", "error"]
    assert events[-1].payload["code"] == "backend_unavailable"
    assert events[-1].payload["retryable"] is True
    stored = await rig.store.list_messages(accepted.conversation_id)
    assert [(m.role, m.content) for m in stored][-1] == (Role.USER, "are you there?")


async def test_errors_before_the_ack_reach_the_sender(rig: Rig) -> None:
    with pytest.raises(CharacterNotFound):
        await rig.hub.send(InboundMessage(user="sam", character_id="nobody", text="hi"))
    with pytest.raises(ConversationNotFound):
        await rig.hub.send(rig.inbound("hi", conversation_id="conv_nope"))
    with pytest.raises(ConversationNotFound):
        async with rig.hub.watch("conv_nope", "sam"):
            pass


async def test_other_users_cannot_watch(rig: Rig) -> None:
    accepted = await rig.hub.send(rig.inbound("secret"))
    with pytest.raises(ConversationNotFound):
        async with rig.hub.watch(accepted.conversation_id, "eve"):
            pass


async def test_overload_admits_the_bounds_and_refuses_the_rest_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, concurrent=2, queued=4)
    async with rig.store:
        for _ in range(20):
            rig.model.enqueue("slow reply", delay_s=0.2)
        sends = [
            rig.hub.send(InboundMessage(user=f"u{i}", character_id="aria", text="hi"))
            for i in range(20)
        ]
        results = await asyncio.gather(*sends, return_exceptions=True)
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, Overloaded)]
        assert (len(accepted), len(refused)) == (6, 14)
        assert all(r.retry_after > 0 for r in refused)
        await rig.hub.close(grace_s=10)
        for a in accepted:
            stored = await rig.store.list_messages(a.conversation_id)
            assert stored[-1].status is MessageStatus.COMPLETE


async def test_shutdown_lets_short_turns_finish_and_cancels_long_ones(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    async with rig.store:
        rig.model.enqueue("quick", delay_s=0.01)
        quick = await rig.hub.send(InboundMessage(user="a", character_id="aria", text="hi"))
        # The fake's replies go to whichever turn asks first: the slow one is scripted only
        # once the quick turn has taken its own.
        await eventually(lambda: rig.model.pending == 0)
        rig.model.enqueue("w " * 200, delay_s=0.05)
        slow = await rig.hub.send(InboundMessage(user="b", character_id="aria", text="hi"))
        await rig.hub.close(grace_s=0.3)
        with pytest.raises(Overloaded, match="shutting down"):
            await rig.hub.send(InboundMessage(user="c", character_id="aria", text="hi"))
        quick_log = await rig.store.list_events(quick.conversation_id)
        slow_log = await rig.store.list_events(slow.conversation_id)
        assert quick_log[-1].event == "message.done"
        assert slow_log[-1].event == "error"
        assert "shutting down" in slow_log[-1].payload["message"]


async def test_the_hub_keeps_sessions_for_live_conversations_only(rig: Rig) -> None:
    rig.model.enqueue("hello there", delay_s=0.01)
    accepted = await rig.hub.send(rig.inbound("hi"))
    session = rig.hub.sessions.get(accepted.conversation_id)
    assert session is not None
    assert session.state is SessionState.ACTIVE
    await rig.collect(accepted.conversation_id)  # watching ends when the reply is done
    await rig.hub.close(grace_s=5)
    assert session.state is SessionState.IDLE
    rig.hub.sessions.idle_expiry_s = 0
    await rig.hub.sessions.sweep()
    assert session.state is SessionState.CLOSED
    assert len(rig.hub.sessions) == 0


async def test_a_busy_conversation_queues_or_rejects_by_policy(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.hub._reject_when_busy = True
    async with rig.store:
        rig.model.enqueue("a long reply " * 20, delay_s=0.01)
        first = await rig.hub.send(rig.inbound("one"))
        with pytest.raises(Busy):
            await rig.hub.send(rig.inbound("two"))
        await rig.collect(first.conversation_id)
        await rig.hub.close(grace_s=5)
    queued = Rig(tmp_path / "q")
    async with queued.store:
        queued.model.enqueue("a long reply " * 5, delay_s=0.01)
        a, b = await asyncio.gather(
            queued.hub.send(queued.inbound("one")), queued.hub.send(queued.inbound("two"))
        )
        assert a.conversation_id == b.conversation_id
        await queued.hub.close(grace_s=5)
        messages = await queued.store.list_messages(a.conversation_id)
        greeting_then_two_turns = [Role.ASSISTANT] + [Role.USER, Role.ASSISTANT] * 2
        assert [m.role for m in messages] == greeting_then_two_turns


async def test_a_long_log_is_replayed_whole_across_pages(rig: Rig) -> None:
    accepted = await rig.hub.send(rig.inbound("hi"))
    first = await rig.collect(accepted.conversation_id)
    extra = [
        EventRecord(seq, seq, "state.changed", {"n": seq})
        for seq in range(first[-1].seq + 1, first[-1].seq + 1201)
    ]
    await rig.store.append_events(accepted.conversation_id, extra)
    seen: list[int] = []
    async with rig.hub.watch(accepted.conversation_id, "sam", after_seq=2) as stream:
        async for event in stream:
            seen.append(event.seq)
            if event.seq == extra[-1].seq:
                break
    assert seen == list(range(3, extra[-1].seq + 1))


class LossyBus(LocalEventBus):
    """Loses the publications of some seqs, as a Redis that was away for a moment would."""

    def __init__(self, lost: set[int]) -> None:
        super().__init__()
        self.lost = lost

    async def publish(self, event: ConversationEvent) -> None:
        if event.seq not in self.lost:
            await super().publish(event)


async def test_a_watcher_gets_what_the_bus_lost_from_the_turn_and_the_log(tmp_path: Path) -> None:
    r = Rig(tmp_path, bus=LossyBus(lost={3, 4, 9}))  # a bus that drops three events
    async with r.store:
        r.model.enqueue("one two three four five six seven eight", delay_s=0.02)
        accepted = await r.hub.send(r.inbound("count"))
        live = await r.collect(accepted.conversation_id)
        await r.hub.close(grace_s=5)
    assert [e.seq for e in live] == list(range(1, len(live) + 1))  # no gap where they were lost
    assert text_of(live) == "one two three four five six seven eight"
