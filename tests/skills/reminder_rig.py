"""A chat service with the reminders skill on real SQLite (conversations, events and reminders
in one file), the real hub and the dispatcher, and a clock the test moves."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from personae.coordination.local import LocalConversationLock, LocalEventBus
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import ConversationEvent, MessageDone, TurnEvent
from personae.core.hub import ConversationHub
from personae.core.reminder_dispatch import DispatchPolicy, ReminderDispatcher
from personae.core.reminder_post import ReminderPoster
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage
from personae.core.types import InboundMessage
from personae.skills.reminders import ReminderLimits, RemindersSkill
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.reminders import SqliteReminderStore
from personae.testing import FakeChatModel


@dataclass
class Clock:
    now: datetime = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def character(id: str = "aria", **extra: Any) -> Character:
    return Character(id=id, name=id.title(), greetings=("Hi!",), skills=("reminders",), **extra)


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        *,
        limits: ReminderLimits | None = None,
        characters: list[Character] | None = None,
        sent: list[tuple[str, str, str, str]] | None = None,
    ) -> None:
        path = self.store_path = tmp_path / "personae.sqlite3"
        self.clock = Clock()
        self.model = FakeChatModel()
        self.store = SqliteConversationStore(path)
        self.reminders = SqliteReminderStore(path)
        self.skill = RemindersSkill(self.reminders, limits, clock=self.clock)
        self.service = ChatService(
            catalog=CharacterCatalog(characters or [character()]),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(),
            skills=SkillStage({"reminders": self.skill}),
        )
        self.hub = ConversationHub(
            service=self.service,
            store=self.store,
            bus=LocalEventBus(),
            lock=LocalConversationLock(),
            admission=Admission(max_concurrent=4, max_queued=8, enqueue_timeout_s=5),
        )
        self.sent = sent  # what went to chat platforms: (channel, chat, text, key)
        self.dispatcher = ReminderDispatcher(
            self.reminders,
            ReminderPoster(self.hub, self.store, channels=self._send if sent is not None else None),
            DispatchPolicy(lease_s=60, retry_initial_s=10),
            now=self.clock,
        )

    async def _send(self, channel: str, chat: str, text: str, key: str) -> bool:
        assert self.sent is not None
        if (channel, chat, text, key) not in self.sent:  # the outbox's dedupe, as it does
            self.sent.append((channel, chat, text, key))
        return True

    async def __aenter__(self) -> Rig:
        await self.store.open()
        await self.reminders.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hub.close(grace_s=5)
        await self.reminders.close()
        await self.store.close()

    async def say(self, text: str, **inbound: Any) -> tuple[str, str]:
        """One HTTP-style turn; (the reply's text, the conversation id)."""
        inbound.setdefault("character_id", "aria")
        message = InboundMessage(user=inbound.pop("user", "sam"), text=text, **inbound)
        events: list[TurnEvent] = []
        async with aclosing(self.service.turn(message)) as turn:
            async for event in turn:
                events.append(event)
        done = events[-1]
        assert isinstance(done, MessageDone)
        return done.message.content, done.conversation_id

    async def replies(self, conversation_id: str) -> list[tuple[str, str | None]]:
        messages = await self.store.list_messages(conversation_id, limit=100)
        return [(m.content, m.model) for m in messages if m.role.value == "assistant"]

    async def events(self, conversation_id: str) -> list[ConversationEvent]:
        """The conversation's events up to the first message.done that answers nobody."""
        found: list[ConversationEvent] = []
        async with asyncio.timeout(5), self.hub.watch(conversation_id, "sam") as stream:
            async for event in stream:
                found.append(event)
                if event.payload.get("reply_to") is None and event.event == "message.done":
                    return found
        raise AssertionError("the stream ended")
