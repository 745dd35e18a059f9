"""Character versions in turns: which version a turn uses after a reload (``switch`` and
``pin``), and that each reply records the version that wrote it. Real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog, CharacterVersion, ReloadPolicy
from personae.core.characters import Character, GenerationOverrides
from personae.core.events import MessageDone, TurnEvent
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import ChatRequest, InboundMessage, ModelChunk, Role
from personae.errors import CharacterNotFound
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


def aria(persona: str, temperature: float = 0.5) -> CharacterVersion:
    character = Character(
        id="aria",
        name="Aria",
        persona=persona,
        greetings=("Hello.",),
        generation=GenerationOverrides(temperature=temperature),
    )
    return CharacterVersion.of(character, f"aria: {persona} {temperature}".encode())


class GatedModel(FakeChatModel):
    """Holds each stream until ``gate`` is set, so a test can act while a turn runs."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        self.started.set()
        await self.gate.wait()
        async with aclosing(super().stream(request)) as chunks:
            async for chunk in chunks:
                yield chunk


class Rig:
    def __init__(self, tmp_path: Path, policy: ReloadPolicy, keep_versions: int = 16) -> None:
        self.v1 = aria("PERSONA-ONE", temperature=0.5)
        self.catalog = CharacterCatalog([self.v1], policy=policy, keep_versions=keep_versions)
        self.model = GatedModel()
        self.store = SqliteConversationStore(tmp_path / "db.sqlite3")
        self.service = ChatService(
            catalog=self.catalog,
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(user_name="Sam"),
        )

    async def say(self, text: str, *, new: bool = False) -> MessageDone:
        inbound = InboundMessage(user="sam", character_id="aria", text=text, new_conversation=new)
        async with aclosing(self.service.turn(inbound)) as events:
            collected: list[TurnEvent] = [event async for event in events]
        done = collected[-1]
        assert isinstance(done, MessageDone)
        return done

    def persona_seen(self) -> str:
        system = self.model.requests[-1].messages[0].content
        return next(p for p in ("PERSONA-ONE", "PERSONA-TWO", "PERSONA-THREE") if p in system)


@pytest.fixture(params=["switch", "pin"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, request.param)
    async with r.store:
        yield r


async def test_each_reply_records_the_version_that_wrote_it(rig: Rig) -> None:
    done = await rig.say("Hi")

    assert done.message.character_version == rig.v1.hash
    messages = await rig.store.list_messages(done.conversation_id)
    # The greeting and the user's message are not written by a version.
    assert [(m.role, m.character_version) for m in messages] == [
        (Role.ASSISTANT, None),
        (Role.USER, None),
        (Role.ASSISTANT, rig.v1.hash),
    ]


async def test_new_conversations_get_a_reload_at_once(rig: Rig) -> None:
    await rig.say("Hi")
    v2 = aria("PERSONA-TWO")
    rig.catalog.put(v2)

    done = await rig.say("Hi again", new=True)

    assert rig.persona_seen() == "PERSONA-TWO"
    assert done.message.character_version == v2.hash


async def test_a_running_turn_finishes_with_the_version_it_started_with(rig: Rig) -> None:
    rig.model.gate.clear()
    turn = asyncio.create_task(rig.say("Hi"))
    await rig.model.started.wait()  # the prompt is built; the model is "thinking"

    rig.catalog.put(aria("PERSONA-TWO"))
    rig.model.gate.set()
    done = await turn

    assert rig.persona_seen() == "PERSONA-ONE"
    assert done.message.character_version == rig.v1.hash


async def test_switch_moves_a_running_conversation_at_its_next_turn(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "switch")
    async with rig.store:
        first = await rig.say("Hi")
        v2 = aria("PERSONA-TWO", temperature=0.1)
        rig.catalog.put(v2)

        second = await rig.say("And now?")

        assert second.conversation_id == first.conversation_id
        assert rig.persona_seen() == "PERSONA-TWO"
        assert rig.model.requests[-1].params.temperature == 0.1
        assert second.message.character_version == v2.hash


async def test_pin_keeps_a_running_conversation_on_its_version(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "pin")
    async with rig.store:
        first = await rig.say("Hi")
        v2 = aria("PERSONA-TWO", temperature=0.1)
        rig.catalog.put(v2)

        second = await rig.say("And now?")
        assert second.conversation_id == first.conversation_id
        assert rig.persona_seen() == "PERSONA-ONE"
        assert rig.model.requests[-1].params.temperature == 0.5  # its generation settings too
        assert second.message.character_version == rig.v1.hash

        other = await rig.say("Fresh start", new=True)  # a new conversation: the current one
        assert rig.persona_seen() == "PERSONA-TWO"
        assert other.message.character_version == v2.hash


async def test_pin_moves_on_when_the_pinned_version_is_no_longer_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "pin", keep_versions=2)
    async with rig.store:
        await rig.say("Hi")
        rig.catalog.put(aria("PERSONA-TWO"))
        v3 = aria("PERSONA-THREE")
        rig.catalog.put(v3)  # PERSONA-ONE falls out of memory

        done = await rig.say("Still there?")
        assert rig.persona_seen() == "PERSONA-THREE"
        assert done.message.character_version == v3.hash

        rig.catalog.put(aria("PERSONA-TWO"))  # and now the conversation is pinned to three
        await rig.say("And now?")
        assert rig.persona_seen() == "PERSONA-THREE"


async def test_a_deleted_character_finishes_the_running_turn_and_refuses_the_next(
    rig: Rig,
) -> None:
    rig.model.gate.clear()
    turn = asyncio.create_task(rig.say("Hi"))
    await rig.model.started.wait()

    rig.catalog.remove("aria")  # its file was deleted
    rig.model.gate.set()
    done = await turn

    assert done.message.character_version == rig.v1.hash
    with pytest.raises(CharacterNotFound):
        await rig.say("Are you there?")
    # What was said stays stored; the file coming back brings the conversation back.
    assert len(await rig.store.list_messages(done.conversation_id)) == 3
    rig.catalog.put(aria("PERSONA-ONE", temperature=0.5))
    again = await rig.say("Welcome back")
    assert again.conversation_id == done.conversation_id
    assert again.message.character_version == rig.v1.hash
