"""The behaviour stage inside real turns: the sample character Mira, scripted conversations
through ChatService on the real SQLite store, the fake model for the far side. Asserts on the
events, the stored state and the instructions in the prompt the model received."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from personae.characters.loader import load_character_file
from personae.coordination.local import LocalConversationLock
from personae.core.behaviour.stage import state_key
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDelta, MessageDone, StateChanged, TurnEvent
from personae.core.ports import VersionedState
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage
from personae.core.types import InboundMessage, Role
from personae.errors import BackendUnavailable, StateConflict
from personae.skills.dice import DiceSkill
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel

MIRA = load_character_file(Path(__file__).parents[3] / "characters" / "mira.yaml")
WARY = "Mira is polite but guarded with Sam; she keeps her answers short."
WARM = "Mira likes Sam now; she is chatty and offers flower trivia."
HURT = "Mira is hurt by Sam's rudeness; she is curt and cool."


class Harness:
    def __init__(self, store: SqliteConversationStore, *characters: Character) -> None:
        self.model = FakeChatModel()
        self.store = store
        self.conversation: str | None = None
        self.service = ChatService(
            catalog=CharacterCatalog(characters or [MIRA]),
            store=store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(user_name="Sam"),
            skills=SkillStage({"dice": DiceSkill(random.Random(3))}),
        )

    async def say(self, text: str, character: str = "mira") -> list[TurnEvent]:
        inbound = InboundMessage(
            user="sam", character_id=character, text=text, conversation_id=self.conversation
        )
        async with aclosing(self.service.turn(inbound)) as events:
            got = [event async for event in events]
        ack = got[0]
        assert isinstance(ack, MessageAck)
        self.conversation = ack.conversation.id
        return got

    async def state(self) -> VersionedState:
        assert self.conversation is not None
        stored = await self.store.get_state(self.conversation, state_key("mira"))
        assert stored is not None
        return stored

    def system_notes(self) -> list[str]:
        """The system messages just before the user's in the latest prompt."""
        messages = self.model.requests[-1].messages
        assert messages[-1].role is Role.USER
        notes = []
        for message in reversed(messages[:-1]):
            if message.role is not Role.SYSTEM or message is messages[0]:
                break
            notes.insert(0, message.content)
        return notes


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with SqliteConversationStore(tmp_path / "personae.sqlite3") as store:
        yield Harness(store)


def state_event(events: list[TurnEvent]) -> StateChanged | None:
    found = [e for e in events if isinstance(e, StateChanged)]
    assert len(found) <= 1
    return found[0] if found else None


def changes(events: list[TurnEvent]) -> dict[str, tuple[Any, Any]]:
    event = state_event(events)
    return {} if event is None else {c["name"]: (c["old"], c["new"]) for c in event.changes}


async def test_kindness_then_rudeness_then_an_apology(harness: Harness) -> None:
    # Turn 1: a plain hello moves nothing; the state's instruction is in the prompt.
    events = await harness.say("Hello there")
    assert state_event(events) is None
    assert harness.system_notes() == [WARY]
    assert (await harness.state()).value == {
        "state": "wary",
        "variables": {"mood": "neutral", "affinity": 30, "apologies": 0},
        "turn": 1,
        "entered_turn": 0,
    }

    # Turn 2: kindness raises affinity and lifts the mood, the state stays.
    events = await harness.say("You are wonderful, thank you so much")
    assert changes(events) == {"mood": ("neutral", "happy"), "affinity": (30, 45)}
    # Turn 3: more of it; affinity crosses 50 but only one transition fires per turn.
    events = await harness.say("I love your flowers, they are beautiful")
    assert changes(events) == {"affinity": (45, 60)}
    assert harness.system_notes() == [WARY]
    # Turn 4: now the threshold transition fires, with its one-off instruction.
    events = await harness.say("What is that blue one called?")
    assert changes(events) == {"state": ("wary", "warm")}
    assert harness.system_notes() == [
        f"{WARM}\nMira smiles for the first time in this conversation."
    ]

    # Turn 5: rudeness wins over everything below it.
    events = await harness.say("Shut up, you are stupid")
    assert changes(events) == {
        "state": ("warm", "hurt"),
        "mood": ("happy", "hurt"),
        "affinity": (60, 40),
    }
    assert harness.system_notes() == [HURT]

    # Turn 6: an apology mends it.
    events = await harness.say("I'm sorry, that was unfair of me")
    assert changes(events) == {
        "state": ("hurt", "wary"),
        "mood": ("hurt", "neutral"),
        "apologies": (0, 1),
    }
    assert harness.system_notes() == [f"{WARY}\nMira accepts the apology, a little stiffly."]

    stored = await harness.state()
    assert stored.version == 6  # one write per turn
    assert stored.value["state"] == "wary"
    assert stored.value["turn"] == 6
    assert stored.value["entered_turn"] == 6


async def test_the_state_event_comes_after_the_ack_and_before_the_reply(harness: Harness) -> None:
    harness.model.enqueue("Oh. Thank you.")
    events = await harness.say("Thanks, you are lovely")
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["MessageAck", "StateChanged"]
    assert kinds[2:-1] == ["MessageDelta"] * (len(kinds) - 3)
    assert kinds[-1] == "MessageDone"
    event = state_event(events)
    assert event is not None
    assert event.character_id == "mira"
    assert event.state == {
        "state": "wary",
        "variables": {"mood": "happy", "affinity": 45, "apologies": 0},
        "turn": 1,
    }


async def test_hurt_calms_down_after_three_turns(harness: Harness) -> None:
    await harness.say("You are ugly")
    for _ in range(2):
        assert "state" not in changes(await harness.say("Whatever."))
    assert changes(await harness.say("Whatever."))["state"] == ("hurt", "wary")


async def test_goodbye_and_return_greets_again_with_the_second_greeting(
    harness: Harness,
) -> None:
    for text in ("You are wonderful", "You are amazing", "Nice shop"):
        await harness.say(text)
    assert (await harness.state()).value["state"] == "warm"
    assert changes(await harness.say("Goodbye")) == {"state": ("warm", "away")}
    assert changes(await harness.say("Hi again")) == {"state": ("away", "warm")}
    assert harness.system_notes() == [f"{WARM}\nMira greets Sam again with: {MIRA.greetings[1]}"]


async def test_a_transition_can_trigger_a_skill_whose_result_goes_in_the_prompt(
    harness: Harness,
) -> None:
    expected = random.Random(3).randint(1, 6)
    await harness.say("Shall we roll for it?")
    notes = harness.system_notes()
    assert notes[-1] == WARY + (
        f'\n[skill dice result: {{"expression": "1d6", "rolls": [{expected}], '
        f'"modifier": 0, "total": {expected}}}]'
    )


async def test_a_failed_turn_takes_its_step_back(harness: Harness) -> None:
    await harness.say("Hello")
    before = await harness.state()
    harness.model.enqueue("", error=BackendUnavailable("down", backend="fake"))
    with pytest.raises(BackendUnavailable):
        await harness.say("You are wonderful")
    after = await harness.state()
    assert after.value == before.value  # the turn left no trace in the machine either
    events = await harness.say("You are wonderful")  # resent: counted once
    assert changes(events)["affinity"] == (30, 42)  # from 30, not from 42


async def test_a_failed_first_turn_leaves_no_state(harness: Harness) -> None:
    harness.model.enqueue("", error=BackendUnavailable("down", backend="fake"))
    inbound = InboundMessage(user="sam", character_id="mira", text="You are wonderful")
    with pytest.raises(BackendUnavailable):
        async with aclosing(harness.service.turn(inbound)) as events:
            async for _ in events:
                pass
    assert await harness.store.list_conversations("usr_none") == []
    assert await harness.store.get_user("sam") is None


class RacingStore(SqliteConversationStore):
    """The real store, with another writer moving the state just before our first writes."""

    def __init__(self, path: Path, races: int) -> None:
        super().__init__(path)
        self.races = races
        self.conflicts = 0

    async def put_state(
        self, conversation_id: str, key: str, value: Any, expected_version: int | None
    ) -> VersionedState:
        if self.races:
            self.races -= 1
            other = {"state": "hurt", "variables": {"affinity": 5}, "turn": 7}
            current = await self.get_state(conversation_id, key)
            await super().put_state(
                conversation_id, key, other, None if current is None else current.version
            )
        try:
            return await super().put_state(conversation_id, key, value, expected_version)
        except StateConflict:
            self.conflicts += 1
            raise


async def test_a_conflicting_write_reads_again_and_steps_from_the_new_state(
    tmp_path: Path,
) -> None:
    async with RacingStore(tmp_path / "db.sqlite3", races=1) as store:
        harness = Harness(store)
        events = await harness.say("Hello")
        assert store.conflicts == 1
        stored = await harness.state()
        # Stepped again from what the other writer left: hurt, turn 7 -> 8.
        assert stored.value["state"] == "hurt"
        assert stored.value["turn"] == 8
        assert stored.value["variables"] == {"mood": "neutral", "affinity": 5, "apologies": 0}
        assert stored.version == 2  # theirs, then ours
        assert harness.system_notes() == [HURT]
        assert isinstance(events[-1], MessageDone)


async def test_conflicts_that_never_end_fail_the_turn_and_leave_no_trace(tmp_path: Path) -> None:
    async with RacingStore(tmp_path / "db.sqlite3", races=10) as store:
        harness = Harness(store)
        inbound = InboundMessage(user="sam", character_id="mira", text="Hello")
        with pytest.raises(StateConflict):
            async with aclosing(harness.service.turn(inbound)) as events:
                async for _ in events:
                    pass
        assert await store.get_user("sam") is None
        assert harness.model.requests == []


async def test_a_character_without_behaviour_has_no_state(tmp_path: Path) -> None:
    async with SqliteConversationStore(tmp_path / "db.sqlite3") as store:
        harness = Harness(store, Character(id="kit", name="Kit"))
        events = await harness.say("You are wonderful", character="kit")
        assert not any(isinstance(e, StateChanged) for e in events)
        assert harness.conversation is not None
        assert await store.get_state(harness.conversation, state_key("kit")) is None
        assert all(isinstance(e, MessageAck | MessageDelta | MessageDone) for e in events)
