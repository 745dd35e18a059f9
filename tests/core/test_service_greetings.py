"""A new conversation opens with the greeting the user chose (a card's alternate greetings);
a greeting the character does not have is refused before anything is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage, Role
from personae.errors import InvalidInput
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel

GREETINGS = ("Hello, {{user}}.", "Back again, {{user}}?", "Quiet night.")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[ChatService, SqliteConversationStore]]:
    character = Character(id="aria", name="Aria", persona="p", greetings=GREETINGS)
    store = SqliteConversationStore(tmp_path / "db.sqlite3")
    service = ChatService(
        catalog=CharacterCatalog([character]),
        store=store,
        routes=ModelRoutes({"fake": FakeChatModel()}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(user_name="Sam"),
    )
    async with store:
        yield service, store


async def first_messages(
    service: ChatService, store: SqliteConversationStore, greeting: int
) -> list[str]:
    inbound = InboundMessage(
        user="sam", character_id="aria", text="hi", new_conversation=True, greeting=greeting
    )
    async with aclosing(service.turn(inbound)) as events:
        ack = next(e for e in [e async for e in events] if isinstance(e, MessageAck))
    messages = await store.recent_messages(ack.conversation.id, limit=10)
    return [m.content for m in messages if m.role is Role.ASSISTANT]


@pytest.mark.parametrize(
    ("index", "text"), [(0, "Hello, Sam."), (1, "Back again, Sam?"), (2, "Quiet night.")]
)
async def test_the_chosen_greeting_opens_the_conversation(
    rig: tuple[ChatService, SqliteConversationStore], index: int, text: str
) -> None:
    service, store = rig
    replies = await first_messages(service, store, index)
    assert replies[0] == text  # then the model's reply
    assert len(replies) == 2


async def test_a_greeting_it_does_not_have_is_refused_and_nothing_stored(
    rig: tuple[ChatService, SqliteConversationStore],
) -> None:
    service, store = rig
    with pytest.raises(InvalidInput, match="has 3 greeting"):
        await first_messages(service, store, 3)
    assert await store.get_user("sam") is None
