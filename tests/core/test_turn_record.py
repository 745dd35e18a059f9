"""Turns recorded through ``ChatService``: the record holds the prompt as the backend got it,
the lore and memory in it, the skill, the overrides and experiment, the parameters, the route
(a failover through a real routed chain) and the stage timings. Real SQLite stores, scripted
fake models; the backend chain is the real router over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDone, TurnEvent
from personae.core.memory.stage import PROFILE_HEADING, CountTokens, NoMemory
from personae.core.overrides import ExperimentTag, Overrides
from personae.core.prompt import AssembledPrompt
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage, with_note
from personae.core.turn_record import TurnRecord
from personae.core.turn_recorder import SampledRecorder, sampled
from personae.core.types import InboundMessage, OpenedTurn, SamplingOverrides
from personae.errors import BackendUnavailable, StorageError
from personae.llm.pool import BackendPool
from personae.skills.dice import DiceSkill
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.turn_records import SqliteTurnRecords
from personae.testing import FakeChatModel

BOOK = {
    "entries": [
        {
            "name": "harbour",
            "keys": ["harbour"],
            "content": "The harbour of Veth is frozen in winter.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 100,
        }
    ],
    "extensions": {},
}


class ProfileNote(NoMemory):
    """Memory that always knows one fact, as the memory stage words its note."""

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        return with_note(prompt, f"{PROFILE_HEADING}\n- likes tea", count_tokens)


@dataclass
class Rig:
    service: ChatService
    recorder: SampledRecorder
    records: SqliteTurnRecords
    primary: FakeChatModel
    backup: FakeChatModel

    async def say(self, text: str, **fields: object) -> MessageDone:
        inbound = InboundMessage(user="sam", character_id="vera", text=text)
        inbound = replace(inbound, **fields)  # type: ignore[arg-type]
        async with aclosing(self.service.turn(inbound)) as events:
            collected: list[TurnEvent] = [e async for e in events]
        done = collected[-1]
        assert isinstance(done, MessageDone)
        await self.recorder.drain()
        return done

    async def record_of(self, done: MessageDone) -> TurnRecord:
        record = await self.records.get(done.message.id)
        assert record is not None
        return record


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    primary, backup = FakeChatModel(name="primary"), FakeChatModel(name="backup")
    pool = BackendPool({"primary": primary, "backup": backup})
    routes = ModelRoutes(pool.guards, default=("primary", "backup"), chain=pool.chain)
    vera = Character(id="vera", name="Vera", persona="A harbour pilot.", skills=("dice",))
    database = SqliteDatabase(tmp_path / "db.sqlite3")
    store = SqliteConversationStore(database)
    records = SqliteTurnRecords(database)
    recorder = SampledRecorder(records, rate=1.0)
    service = ChatService(
        catalog=CharacterCatalog([vera.model_copy(update={"character_book": BOOK})]),
        store=store,
        routes=routes,
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        memory=ProfileNote(),
        skills=SkillStage({"dice": DiceSkill()}),
        recorder=recorder,
    )
    async with store, records:
        yield Rig(service, recorder, records, primary, backup)


async def test_the_record_holds_the_prompt_as_sent_with_its_lore_and_memory(rig: Rig) -> None:
    done = await rig.say("Is the harbour open?")
    record = await rig.record_of(done)
    sent = rig.primary.requests[-1]
    assert record.prompt == sent.messages  # exactly what the backend got
    assert record.params == sent.params
    assert record.turn_id == done.message.id
    assert record.conversation_id == done.conversation_id
    assert record.character_id == "vera"
    assert record.character_version == done.message.character_version
    assert record.lore == ("harbour",)
    assert "frozen in winter" in "\n".join(m.content for m in record.prompt)
    assert record.memory_note == f"{PROFILE_HEADING}\n- likes tea"
    assert record.model == "primary>backup"
    assert record.usage == done.usage


async def test_stage_timings_and_the_route_of_a_clean_turn(rig: Rig) -> None:
    record = await rig.record_of(await rig.say("hello"))
    names = [stage.name for stage in record.stages]
    assert names == ["open", "skills", "behaviour", "prompt", "generate"]
    assert all(stage.ms >= 0 for stage in record.stages)
    assert record.total_ms >= sum(stage.ms for stage in record.stages)
    (route,) = record.routes
    assert route.chain == ("primary", "backup")
    assert route.backend == "primary"
    assert not route.failures
    assert not route.failed_over
    assert route.retries == 0


async def test_a_failover_is_in_the_route(rig: Rig) -> None:
    rig.primary.enqueue("never", error=BackendUnavailable("down", backend="primary"))
    record = await rig.record_of(await rig.say("hello"))
    (route,) = record.routes
    assert route.backend == "backup"
    assert route.failed_over
    assert [a.backend for a in route.failures] == ["primary"]
    assert "down" in route.failures[0].outcome


async def test_overrides_and_experiment_are_recorded(rig: Rig) -> None:
    overrides = Overrides(route=("backup",), generation=SamplingOverrides(temperature=0.1))
    tag = ExperimentTag("exp-1", "cooler")
    record = await rig.record_of(await rig.say("hello", overrides=overrides, experiment=tag))
    assert record.overrides == overrides
    assert record.experiment == tag
    assert record.params.temperature == 0.1
    assert record.routes[0].chain == ("backup",)


async def test_a_slash_command_records_the_skill_and_no_prompt(rig: Rig) -> None:
    record = await rig.record_of(await rig.say("/roll 2d6"))
    assert record.skill is not None
    assert (record.skill.name, record.skill.ok, record.skill.answered) == ("dice", True, True)
    assert record.prompt == ()
    assert record.routes == ()
    assert not rig.primary.requests


async def test_rate_zero_records_nothing(rig: Rig) -> None:
    rig.recorder.rate = 0.0
    done = await rig.say("hello")
    assert await rig.records.get(done.message.id) is None
    assert await rig.records.for_conversation(done.conversation_id) == []


class BrokenRecords(SqliteTurnRecords):
    async def add(self, records: Sequence[TurnRecord]) -> int:
        raise StorageError("disk full")


async def test_a_failing_record_store_never_fails_the_turn(rig: Rig, tmp_path: Path) -> None:
    broken = SampledRecorder(BrokenRecords(tmp_path / "other.sqlite3"), rate=1.0)
    rig.service.recorder = broken
    rig.recorder = broken
    done = await rig.say("hello")
    assert done.message.content  # the reply was stored and sent
    assert broken.dropped == 1


async def test_sampled_conversations_are_recorded_whole_and_only_they(rig: Rig) -> None:
    rig.recorder.rate = 0.5
    recorded: dict[str, int] = {}
    for _ in range(8):
        first = await rig.say("hello", new_conversation=True)
        await rig.say("again", conversation_id=first.conversation_id)
        kept = await rig.records.for_conversation(first.conversation_id)
        recorded[first.conversation_id] = len(kept)
    assert set(recorded.values()) <= {0, 2}
    assert recorded == {c: 2 if sampled(c, 0.5) else 0 for c in recorded}


async def test_a_turn_stops_recording_once_its_ack_shows_an_unsampled_conversation(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new conversation is unknown when the turn starts, so its trace begins recording; a
    # conversation outside the sample must not go on to build a record only to drop it.
    built: list[str] = []
    record = rig.recorder.finished

    def counted(made: TurnRecord) -> object:
        built.append(made.conversation_id)
        return record(made)

    monkeypatch.setattr(rig.recorder, "finished", counted)
    rig.recorder.rate = 0.5
    conversations: list[str] = []
    while len(conversations) < 40 and len({sampled(c, 0.5) for c in conversations}) < 2:
        conversations.append((await rig.say("hello", new_conversation=True)).conversation_id)
    assert {sampled(c, 0.5) for c in conversations} == {True, False}  # both kinds seen
    assert built == [c for c in conversations if sampled(c, 0.5)]
