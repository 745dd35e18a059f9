"""The skill stage of a turn, on the real SQLite store: a slash command is answered by the skill
without the model; a keyword adds the skill's data to the prompt; failures never kill a turn."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage
from personae.core.skills import (
    Keywords,
    Skill,
    SkillContext,
    SkillResult,
    SkillRunner,
    SlashCommand,
)
from personae.core.types import InboundMessage, Role
from personae.skills.dice import DiceSkill
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


class Broken(Skill):
    name = "broken"
    triggers = (SlashCommand("broken"), Keywords(("break it",)))

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        if self.hang:
            await asyncio.sleep(60)
        raise RuntimeError("the skill is broken")


class Weather(Skill):
    name = "weather"
    triggers = (Keywords(("weather",)),)

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        return SkillResult(text="Sunny.", data={"sky": "clear", "celsius": 21})


class Harness:
    def __init__(self, tmp_path: Path, skills: list[Skill]) -> None:
        self.model = FakeChatModel()
        self.store = SqliteConversationStore(tmp_path / "personae.sqlite3")
        names = tuple(skill.name for skill in skills)
        self.service = ChatService(
            catalog=CharacterCatalog(
                [Character(id="bram", name="Bram", skills=names), Character(id="kit", name="Kit")]
            ),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(),
            skills=SkillStage({s.name: s for s in skills}, SkillRunner(timeout_s=0.1)),
        )

    async def run(self, text: str, character: str = "bram") -> list[TurnEvent]:
        inbound = InboundMessage(user="sam", character_id=character, text=text)
        async with aclosing(self.service.turn(inbound)) as events:
            return [event async for event in events]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    skills: list[Skill] = [DiceSkill(random.Random(5)), Broken(), Weather()]
    h = Harness(tmp_path, skills)
    async with h.store:
        yield h


def reply_of(events: list[TurnEvent]) -> tuple[str, MessageDone]:
    ack, *deltas, done = events
    assert isinstance(ack, MessageAck)
    assert isinstance(done, MessageDone)
    return "".join(d.text for d in deltas if isinstance(d, MessageDelta)), done


async def test_a_slash_command_is_answered_by_the_skill_not_the_model(harness: Harness) -> None:
    expected = random.Random(5)
    rolls = [expected.randint(1, 6) for _ in range(2)]
    text, done = reply_of(await harness.run("/roll 2d6+1"))
    assert text == f"🎲 2d6+1: {rolls[0]} + {rolls[1]} + 1 = {sum(rolls) + 1}"
    assert harness.model.requests == []
    assert done.message.content == text
    assert done.message.model == "skill:dice"
    assert done.finish_reason == "stop"
    stored = await harness.store.list_messages(done.conversation_id)
    assert [(m.role, m.content) for m in stored] == [
        (Role.USER, "/roll 2d6+1"),
        (Role.ASSISTANT, text),
    ]


async def test_bad_input_to_a_command_is_the_reply(harness: Harness) -> None:
    text, _ = reply_of(await harness.run("/roll 0d6"))
    assert text == "Sorry, dice failed: roll between 1 and 100 dice, not 0."
    assert harness.model.requests == []


async def test_a_character_without_the_skill_gets_the_models_reply(harness: Harness) -> None:
    harness.model.enqueue("I have no dice.")
    text, done = reply_of(await harness.run("/roll 2d6", character="kit"))
    assert text == "I have no dice."
    assert done.message.model == "fake"
    assert harness.model.requests[0].messages[-1].content == "/roll 2d6"


async def test_a_skill_that_raises_gives_an_error_and_the_turn_completes(
    harness: Harness,
) -> None:
    text, done = reply_of(await harness.run("/broken now"))
    assert text == "Sorry, broken failed: an internal error."
    assert done.message.model == "skill:broken"


async def test_a_skill_that_hangs_gives_an_error_and_the_turn_completes(tmp_path: Path) -> None:
    harness = Harness(tmp_path, [Broken(hang=True)])
    async with harness.store:
        text, _ = reply_of(await harness.run("/broken"))
    assert text == "Sorry, broken failed: no answer within 0.1 s."


async def test_a_keyword_adds_the_skills_data_to_the_prompt(harness: Harness) -> None:
    harness.model.enqueue("Clear skies, 21 degrees.")
    text, done = reply_of(await harness.run("How is the weather?"))
    assert text == "Clear skies, 21 degrees."
    assert done.message.model == "fake"
    *_, note, user = harness.model.requests[0].messages
    assert (note.role, note.content) == (
        Role.SYSTEM,
        '[skill weather result: {"sky": "clear", "celsius": 21}]',
    )
    assert (user.role, user.content) == (Role.USER, "How is the weather?")


async def test_a_failing_keyword_skill_is_left_out(harness: Harness) -> None:
    await harness.run("please break it")
    messages = harness.model.requests[0].messages
    assert all("skill" not in m.content for m in messages)
    assert messages[-1].content == "please break it"
