"""The memory commands in a chat service on real SQLite, with memory written as in a server
(each message stored with its memory items): remember, recall, forget by words or by id, the
prompt recalling what was remembered, and a plain answer when memory is off."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDone
from personae.core.memory.capture import memories_of
from personae.core.memory.items import Partition
from personae.core.memory.stage import MemoryStage
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage
from personae.core.types import InboundMessage, Role
from personae.skills.memory import MEMORY_OFF, MemorySkill
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel

ARIA = Character(id="aria", name="Aria", greetings=("Hi!",), skills=("memory",))


@dataclass
class Rig:
    service: ChatService
    model: FakeChatModel
    conversations: SqliteConversationStore
    memory: SqliteMemoryStore | None

    async def say(self, text: str, user: str = "sam") -> str:
        inbound = InboundMessage(user=user, character_id="aria", text=text)
        async with aclosing(self.service.turn(inbound)) as turn:
            events = [event async for event in turn]
        done = events[-1]
        assert isinstance(done, MessageDone)
        return done.message.content

    async def texts(self, user: str = "sam") -> list[str]:
        found = await self.conversations.get_user(user)
        assert found is not None
        assert self.memory is not None
        items = await self.memory.list_items(Partition.private(found.id, "aria"), limit=1000)
        return [item.text for item in items]


def make_rig(
    conversations: SqliteConversationStore,
    memory: SqliteMemoryStore | None,
    settings: TurnSettings | None = None,
) -> Rig:
    model = FakeChatModel()
    service = ChatService(
        catalog=CharacterCatalog([ARIA]),
        store=conversations,
        routes=ModelRoutes({"fake": model}, default="fake"),
        lock=LocalConversationLock(),
        settings=settings or TurnSettings(),
        skills=SkillStage({"memory": MemorySkill(memory, conversations)}),
        memory=MemoryStage(memory) if memory is not None else None,
    )
    return Rig(service, model, conversations, memory)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    path = tmp_path / "personae.sqlite3"
    async with (
        SqliteConversationStore(path, remember=memories_of) as conversations,
        SqliteMemoryStore(path) as memory,
    ):
        yield make_rig(conversations, memory)


async def test_remember_then_recall(rig: Rig) -> None:
    reply = await rig.say("/remember I am allergic to peanuts")
    assert re.fullmatch(r"I will remember that\. \(memory [0-9a-f]{8}\)", reply)
    recalled = await rig.say("/recall peanuts")
    lines = recalled.splitlines()
    assert lines[0] == "I remember:"
    assert any(line.endswith("] I am allergic to peanuts") for line in lines[1:])
    assert not any("/recall" in line for line in lines)  # not the command itself
    assert (await rig.say("/recall submarines")) == "I remember nothing about 'submarines'."
    assert rig.model.requests == []


async def test_what_was_remembered_reaches_later_prompts(rig: Rig) -> None:
    # A window of one message: the /remember command is out of it, so recall must bring it.
    rig = make_rig(rig.conversations, rig.memory, TurnSettings(history_messages=1))
    await rig.say("/remember my cat is called Miso")
    for filler in ("Nice weather.", "Tell me a story."):
        rig.model.enqueue("Indeed.")
        await rig.say(filler)
    rig.model.enqueue("Miso!")
    await rig.say("What is the name of my cat?")
    prompt = rig.model.requests[-1].messages
    assert not [m for m in prompt if m.role is not Role.SYSTEM and "Miso" in m.content]
    notes = [m.content for m in prompt if m.role is Role.SYSTEM]
    assert any("my cat is called Miso" in note for note in notes)


async def test_forget_by_words_removes_every_trace(rig: Rig) -> None:
    await rig.say("/remember I am allergic to peanuts")
    await rig.say("/remember I live in Lyon")
    await rig.say("/recall peanuts")  # its reply quotes the fact: a memory too
    forgotten = await rig.say("/forget peanuts")
    assert re.fullmatch(r"Forgotten: \d+ memor(y|ies)\.", forgotten)
    assert "peanuts" not in forgotten
    texts = await rig.texts()
    assert not [text for text in texts if "peanut" in text]
    assert "I live in Lyon" in texts
    assert (await rig.say("/recall peanuts")) == "I remember nothing about 'peanuts'."
    assert (await rig.say("/forget submarines")) == "I found nothing like that to forget."


async def test_forget_by_id(rig: Rig) -> None:
    reply = await rig.say("/remember I live in Lyon")
    match = re.search(r"memory ([0-9a-f]{8})", reply)
    assert match is not None
    assert (await rig.say(f"/forget {match[1]}")) == "Forgotten: 1 memory."
    assert "I live in Lyon" not in await rig.texts()


async def test_one_users_commands_never_reach_anothers_memory(rig: Rig) -> None:
    await rig.say("/remember my code word is heron", user="sam")
    assert (await rig.say("/recall heron", user="eve")) == "I remember nothing about 'heron'."
    await rig.say("/forget heron", user="eve")
    assert "my code word is heron" in await rig.texts("sam")


async def test_bad_input_is_a_clear_reply(rig: Rig) -> None:
    assert (await rig.say("/remember")) == (
        "Sorry, memory failed: say what to remember: /remember <text>."
    )
    assert (await rig.say("/remember " + "x" * 2001)).startswith(
        "Sorry, memory failed: invalid arguments: text:"
    )


async def test_with_memory_off_each_command_says_so(tmp_path: Path) -> None:
    async with SqliteConversationStore(tmp_path / "personae.sqlite3") as conversations:
        rig = make_rig(conversations, None)
        for command in ("/remember I like tea", "/recall tea", "/forget tea"):
            assert await rig.say(command) == MEMORY_OFF
        assert rig.model.requests == []
