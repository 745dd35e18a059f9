"""Redo turns through ChatService: a regenerate answers the last user message again from the
history before it (the earlier reply is kept as an alternative, not shown to the model); an
edit replaces the message's text first. Real SQLite store, scripted fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDone, TurnEvent
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage, Redo, Role
from personae.errors import BackendUnavailable, Conflict, InvalidInput
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        character = Character(id="aria", name="Aria", persona="p")  # no greeting
        self.model = FakeChatModel()
        self.store = SqliteConversationStore(tmp_path / "db.sqlite3")
        self.service = ChatService(
            catalog=CharacterCatalog([character]),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(user_name="Sam"),
        )
        self.conversation = ""

    async def run(self, text: str = "", **kwargs: object) -> list[TurnEvent]:
        inbound = InboundMessage(
            user="sam",
            character_id="aria",
            text=text,
            conversation_id=self.conversation or None,
            **kwargs,  # type: ignore[arg-type]
        )
        async with aclosing(self.service.turn(inbound)) as events:
            collected = [e async for e in events]
        ack = collected[0]
        assert isinstance(ack, MessageAck)
        self.conversation = ack.conversation.id
        return collected

    def prompt(self) -> list[tuple[Role, str]]:
        return [(m.role, m.content) for m in self.model.requests[-1].messages[1:]]  # no system

    async def history(self) -> list[str]:
        return [m.content for m in await self.store.recent_messages(self.conversation, limit=20)]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    made = Rig(tmp_path)
    async with made.store:
        yield made


async def test_a_regenerate_answers_again_without_the_earlier_reply(rig: Rig) -> None:
    rig.model.enqueue("first answer")
    await rig.run("Where to?")
    rig.model.enqueue("second answer")

    events = await rig.run(redo=Redo.REGENERATE)

    assert rig.prompt() == [(Role.USER, "Where to?")]  # the old reply is not shown the model
    done = events[-1]
    assert isinstance(done, MessageDone)
    assert done.message.content == "second answer"
    assert done.message.swipe_of is not None
    assert await rig.history() == ["Where to?", "second answer"]
    everything = await rig.store.list_messages(rig.conversation, alternatives=True)
    assert [m.content for m in everything] == ["Where to?", "first answer", "second answer"]


async def test_an_edit_answers_the_new_text(rig: Rig) -> None:
    rig.model.enqueue("about cats")
    await rig.run("Tell me about cast")
    asked = (await rig.store.recent_messages(rig.conversation, limit=5))[0]
    rig.model.enqueue("about cats, properly")

    await rig.run("Tell me about cats", redo=Redo.EDIT, redo_of=asked.id)

    assert rig.prompt() == [(Role.USER, "Tell me about cats")]
    assert await rig.history() == ["Tell me about cats", "about cats, properly"]


async def test_a_failed_regenerate_keeps_the_conversation_as_it_was(rig: Rig) -> None:
    rig.model.enqueue("the answer")
    await rig.run("question")
    rig.model.enqueue("never", error=BackendUnavailable("down", backend="fake"))

    with pytest.raises(BackendUnavailable):
        await rig.run(redo=Redo.REGENERATE)

    assert await rig.history() == ["question", "the answer"]  # nothing discarded or hidden


async def test_a_regenerate_of_an_old_reply_or_without_a_conversation_is_refused(
    rig: Rig,
) -> None:
    rig.model.enqueue("one")
    first = await rig.run("q1")
    rig.model.enqueue("two")
    await rig.run("q2")
    old = first[-1]
    assert isinstance(old, MessageDone)
    with pytest.raises(Conflict):
        await rig.run(redo=Redo.REGENERATE, redo_of=old.message.id)
    rig.conversation = ""
    with pytest.raises(InvalidInput, match="names its conversation"):
        await rig.run(redo=Redo.REGENERATE)
