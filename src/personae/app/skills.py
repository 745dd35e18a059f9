"""The skills that need the runtime's stores (reminders, memory), registered through the same
``register_skills`` hook as every plugin, and the reminder dispatcher under the supervisor
(``skills:`` settings, docs/skills.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta

import pluggy
import structlog

from personae.channels.runner import ChannelSet
from personae.core.channels import NewOutboxItem
from personae.core.hub import ConversationHub
from personae.core.ports import ConversationStore, Embedder, MemoryStore
from personae.core.reminder_dispatch import DispatchPolicy, ReminderDispatcher
from personae.core.reminder_post import ChannelSend, ReminderPoster
from personae.core.reminder_store import ReminderStore
from personae.core.skills import Skill, SkillRunner
from personae.core.supervisor import Supervisor
from personae.plugins.specs import RegisterSkill, hookimpl
from personae.settings import Settings
from personae.skills.memory import MemorySkill
from personae.skills.reminders import ReminderLimits, RemindersSkill
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.reminders import SqliteReminderStore

log = structlog.get_logger(__name__)


class RuntimeSkillsPlugin:
    """Registers skills built over the runtime's stores, as a plugin would."""

    def __init__(self, skills: Sequence[Skill]) -> None:
        self._skills = list(skills)

    @hookimpl
    def register_skills(self, register: RegisterSkill) -> None:
        for skill in self._skills:
            register(skill)


def skill_runner(settings: Settings) -> SkillRunner:
    return SkillRunner(
        timeout_s=settings.skills.timeout_s, max_concurrency=settings.skills.max_concurrency
    )


class Reminders:
    """The reminder store, the skill over it, and (once the hub exists) the dispatcher."""

    def __init__(self, settings: Settings, store: ReminderStore) -> None:
        config = settings.skills.reminders
        self.store = store
        self.policy = DispatchPolicy(
            poll_interval_s=config.poll_interval_s,
            lease_s=config.lease_s,
            max_attempts=config.max_attempts,
        )
        self._wakeup = asyncio.Event()  # the skill sets it; the dispatcher waits on it
        limits = ReminderLimits(
            max_pending=config.max_pending_per_user,
            max_ahead=timedelta(days=config.max_ahead_days),
            default_timezone=config.default_timezone,
        )
        self.skill = RemindersSkill(store, limits, on_added=self._wakeup.set)
        self.dispatcher: ReminderDispatcher | None = None

    def start(
        self,
        supervisor: Supervisor,
        *,
        hub: ConversationHub,
        conversations: ConversationStore,
        channels: ChannelSet | None,
    ) -> ReminderDispatcher:
        """Deliver due reminders from now on (overdue ones first: a restart delivers them)."""
        poster = ReminderPoster(hub, conversations, channels=channel_send(channels))
        dispatcher = ReminderDispatcher(self.store, poster, self.policy, wakeup=self._wakeup)
        supervisor.start("reminders", dispatcher.run_forever)
        self.dispatcher = dispatcher
        return dispatcher


async def open_runtime_skills(
    settings: Settings,
    stack: AsyncExitStack,
    plugins: pluggy.PluginManager,
    *,
    database: SqliteDatabase,
    conversations: ConversationStore,
    memory: MemoryStore | None,
    embedder: Embedder | None,
) -> Reminders:
    """Open the reminder store and register the reminders and memory skills on ``plugins``
    (before the skill registry is read). The memory skill answers that memory is off when
    ``memory`` is None."""
    store = await stack.enter_async_context(SqliteReminderStore(database))
    reminders = Reminders(settings, store)
    memory_skill = MemorySkill(
        memory,
        conversations,
        embedder=embedder,
        embed_timeout_s=settings.memory.embed_timeout_s,
    )
    plugins.register(
        RuntimeSkillsPlugin([reminders.skill, memory_skill]), name="personae-runtime-skills"
    )
    return reminders


def channel_send(channels: ChannelSet | None) -> ChannelSend | None:
    """Sends through a running channel's outbox (durable, deduplicated by key)."""
    if channels is None:
        return None
    runners = channels.runners

    async def send(channel: str, chat: str, text: str, key: str) -> bool:
        runner = runners.get(channel)
        if runner is None:
            return False
        item = NewOutboxItem(
            channel=channel, chat=chat, text=text[: runner.channel.max_chars], dedupe_key=key
        )
        await runner.worker.enqueue([item])
        return True

    return send
