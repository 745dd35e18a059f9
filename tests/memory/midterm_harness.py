"""ChatService with mid-term memory on the real SQLite stores: the chat, the summariser and
the fact extractor each on their own scripted model, so a test knows which answer goes where.
The job runs when the test says (``settle``), as the supervised task would between turns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDone
from personae.core.memory.capture import memories_of
from personae.core.memory.llm_extract import LlmFactExtractor
from personae.core.memory.midterm import MidTermJob, MidTermMemory, MidTermSettings
from personae.core.memory.stage import PROFILE_HEADING, MemoryBudget, MemoryStage
from personae.core.memory.summary import STATE_KEY, SUMMARY_HEADING, MidTermState, Summariser
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import ChatMessage, InboundMessage, Role
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel

MIRA = Character(id="mira", name="Mira", persona="{{char}} keeps a lighthouse.")
NO_FACTS = json.dumps({"facts": []})


def summary_answer(text: str) -> str:
    return json.dumps({"summary": text})


def facts_answer(*facts: dict[str, Any]) -> str:
    return json.dumps({"facts": list(facts)})


class MidTermHarness:
    def __init__(
        self,
        path: Path,
        *,
        window_turns: int,
        settings: MidTermSettings,
        characters: Sequence[Character] = (MIRA,),
        summary_model: FakeChatModel | None = None,
    ) -> None:
        self.model = FakeChatModel()  # the character's replies
        self.summary_model = summary_model or FakeChatModel(
            default_reply=summary_answer("Nothing new.")
        )
        self.facts_model = FakeChatModel(default_reply=NO_FACTS)
        self.conversations = SqliteConversationStore(path, remember=memories_of)
        self.memory = SqliteMemoryStore(path)  # no embedder: full-text recall
        self.job = MidTermJob(
            self.conversations,
            self.memory,
            summariser=Summariser(self.summary_model, summary_tokens=settings.summary_tokens)
            if settings.summary_tokens
            else None,
            extractor=LlmFactExtractor(self.facts_model) if settings.extract_every_turns else None,
            settings=settings,
            facts=self.memory,
        )
        catalog = CharacterCatalog(list(characters))
        stage = MemoryStage(
            self.memory,
            facts=self.memory,
            budget=MemoryBudget(),
            conversations=self.conversations,
            cross_character=lambda c: c in catalog and catalog.get(c).memory.cross_character,
        )
        self.service = ChatService(
            catalog=catalog,
            store=self.conversations,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(history_messages=2 * window_turns, user_name="Sam"),
            memory=MidTermMemory(stage, self.conversations, self.job),
        )
        self.conversation_id = ""

    async def __aenter__(self) -> MidTermHarness:
        await self.conversations.open()
        await self.memory.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.memory.close()
        await self.conversations.close()

    async def say(
        self, text: str, *, user: str = "sam", character: str = "mira"
    ) -> list[ChatMessage]:
        """One turn, then the job's work; the messages the model was sent for the reply."""
        inbound = InboundMessage(user=user, character_id=character, text=text)
        async with aclosing(self.service.turn(inbound)) as turn:
            events = [e async for e in turn]
        assert isinstance(events[-1], MessageDone)
        ack = events[0]
        assert isinstance(ack, MessageAck)
        self.conversation_id = ack.conversation.id
        sent = list(self.model.requests[-1].messages)
        await self.settle()
        return sent

    async def settle(self) -> None:
        while await self.job.run_once():
            pass

    async def state(self, conversation_id: str | None = None) -> MidTermState:
        stored = await self.conversations.get_state(
            conversation_id or self.conversation_id, STATE_KEY
        )
        return MidTermState.of(stored.value) if stored else MidTermState()


def note_with(messages: Sequence[ChatMessage], heading: str) -> str:
    notes = [m.content for m in messages if m.role is Role.SYSTEM and heading in m.content]
    assert len(notes) <= 1
    return notes[0] if notes else ""


def summary_note(messages: Sequence[ChatMessage]) -> str:
    return note_with(messages, SUMMARY_HEADING)


def profile_note(messages: Sequence[ChatMessage]) -> str:
    return note_with(messages, PROFILE_HEADING)


def chat(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.content for m in messages if m.role is not Role.SYSTEM]
