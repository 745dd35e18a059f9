"""What ``ChatService`` and ``ConversationHub`` report to their observer: one call per turn,
with the right outcome, whatever way the turn ends; refusals by reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from personae.coordination.local import LocalConversationLock, LocalEventBus
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDelta, TurnEvent
from personae.core.hub import ConversationHub
from personae.core.observe import ObserverFanout, TurnObserver, TurnOutcome, TurnReport
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage
from personae.errors import BackendUnavailable, Busy, ContextOverflow, Overloaded
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


@dataclass
class Recorder(TurnObserver):
    turns: list[TurnReport] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def turn_finished(self, report: TurnReport) -> None:
        self.turns.append(report)

    def request_rejected(self, reason: str) -> None:
        self.rejected.append(reason)

    @property
    def outcomes(self) -> list[TurnOutcome]:
        return [turn.outcome for turn in self.turns]


class Broken(TurnObserver):
    def turn_finished(self, report: TurnReport) -> None:
        raise RuntimeError("a bug in the metrics")


@dataclass
class Rig:
    model: FakeChatModel
    store: SqliteConversationStore
    service: ChatService
    seen: Recorder

    def inbound(self, text: str = "Where to?", **kwargs: Any) -> InboundMessage:
        return InboundMessage(user="sam", character_id="aria", text=text, **kwargs)

    async def run(self, inbound: InboundMessage | None = None) -> list[TurnEvent]:
        async with aclosing(self.service.turn(inbound or self.inbound())) as events:
            return [event async for event in events]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    model = FakeChatModel(context_window=400)  # 256 of them for the reply
    store = SqliteConversationStore(tmp_path / "observer.sqlite3")
    seen = Recorder()
    service = ChatService(
        catalog=CharacterCatalog([Character(id="aria", name="Aria")]),
        store=store,
        routes=ModelRoutes({"fake": model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        observer=seen,
    )
    async with store:
        yield Rig(model, store, service, seen)


async def test_a_complete_turn_reports_ok_with_timings_and_usage(rig: Rig) -> None:
    rig.model.enqueue("Set course for Vesta.", first_token_delay_s=0.02)
    await rig.run()
    (turn,) = rig.seen.turns
    assert turn.outcome is TurnOutcome.OK
    assert (turn.character, turn.backend, turn.tokens_out) == ("aria", "fake", 4)
    assert turn.tokens_in > 0
    assert turn.latency_ms >= turn.ttft_ms >= 20


async def test_each_way_a_turn_ends_has_its_outcome(rig: Rig) -> None:
    rig.model.enqueue("x", error=BackendUnavailable("down", backend="fake"))
    with pytest.raises(BackendUnavailable):
        await rig.run()
    rig.model.enqueue(
        "one two three", error=BackendUnavailable("cut", backend="fake"), error_after_tokens=1
    )
    with pytest.raises(BackendUnavailable):
        await rig.run()
    with pytest.raises(ContextOverflow):
        await rig.run(rig.inbound(" ".join(["word"] * 200)))
    rig.model.enqueue("one two three four", delay_s=0.01)
    async with aclosing(rig.service.turn(rig.inbound())) as events:
        async for event in events:
            if isinstance(event, MessageDelta):
                break  # the client went away
    assert rig.seen.outcomes == [
        TurnOutcome.FAILED,
        TurnOutcome.INCOMPLETE,
        TurnOutcome.ERROR,
        TurnOutcome.CANCELLED,
    ]
    assert [t.ttft_ms is None for t in rig.seen.turns] == [True, False, True, False]
    assert all(t.tokens_in == t.tokens_out == 0 for t in rig.seen.turns)


async def test_a_retried_idempotency_key_is_not_a_turn(rig: Rig) -> None:
    await rig.run(rig.inbound(idempotency_key="k1"))
    await rig.run(rig.inbound(idempotency_key="k1"))
    assert rig.seen.outcomes == [TurnOutcome.OK]


async def test_a_broken_observer_does_not_break_the_turn(tmp_path: Path) -> None:
    store = SqliteConversationStore(tmp_path / "broken.sqlite3")
    seen = Recorder()
    service = ChatService(
        catalog=CharacterCatalog([Character(id="aria", name="Aria")]),
        store=store,
        routes=ModelRoutes({"fake": FakeChatModel()}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        observer=ObserverFanout([seen, Broken()]),
    )
    async with store, aclosing(service.turn(InboundMessage("sam", "aria", "hi"))) as events:
        assert len([event async for event in events]) > 2
    assert [t.outcome for t in seen.turns] == [TurnOutcome.OK]


async def test_the_hub_reports_refusals_by_reason(rig: Rig) -> None:
    seen = Recorder()
    hub = ConversationHub(
        service=rig.service,
        store=rig.store,
        bus=LocalEventBus(),
        lock=LocalConversationLock(),
        # Admission counts its own refusals (shared by every transport), the hub the rest.
        admission=Admission(max_concurrent=1, max_queued=0, enqueue_timeout_s=1, observer=seen),
        reject_when_busy=True,
        observer=seen,
    )
    rig.model.enqueue("a slow reply", delay_s=0.1)
    await hub.send(rig.inbound())
    assert hub.running_turns == 1
    with pytest.raises(Busy):
        await hub.send(rig.inbound())  # same conversation, reply in progress
    with pytest.raises(Overloaded):
        await hub.send(InboundMessage(user="kim", character_id="aria", text="hello"))
    await hub.close(grace_s=5)
    with pytest.raises(Overloaded):
        await hub.send(rig.inbound())
    assert seen.rejected == ["busy", "overloaded", "shutting_down"]
    assert rig.seen.outcomes == [TurnOutcome.OK]  # the service still reports the turn
    assert hub.queued_turns == 0
