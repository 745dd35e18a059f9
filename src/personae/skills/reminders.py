"""Reminders: a message from the character at a time (``/remind 10m stretch``, ``/remind 18:30
call mum``, "remind me in 10 minutes to stretch"), listed with ``/reminders`` and cancelled
with ``/remind cancel <id>``. Stored durably (``ReminderStore``) and delivered by the
dispatcher (``core/reminder_dispatch.py``) into the conversation and, when set from a chat
platform, to that chat.

Options a character may set (``extensions.skill_options.reminders``): ``timezone`` (for its
users whose zone is unknown) and ``max_pending`` (lower than the server's limit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from personae.core.reminder_store import NewReminder, Reminder, ReminderStore
from personae.core.reminders import parse_reminder
from personae.core.skills import Intent, Pattern, Skill, SkillContext, SkillResult, SlashCommand
from personae.errors import InvalidInput
from personae.skills.clock import find_zone


@dataclass(frozen=True, slots=True)
class ReminderLimits:
    max_pending: int = 20  # per user, across characters
    max_ahead: timedelta = timedelta(days=366)
    default_timezone: str = "UTC"


class RemindersSkill(Skill):
    name = "reminders"
    version = "1"
    description = (
        "Remind the user of something at a time: '10m stretch', 'in 2 hours call mum', "
        "'18:30 tea'. Also lists and cancels the user's reminders."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["add", "list", "cancel"]},
            "request": {
                "type": "string",
                "maxLength": 600,
                "description": "for add: when, then what ('in 10 minutes stretch', '18:30 tea')",
            },
            "id": {"type": "string", "maxLength": 40, "description": "for cancel: its id"},
        },
        "required": ["action"],
        "additionalProperties": False,
    }
    triggers = (
        SlashCommand("remind"),
        SlashCommand("reminders"),
        SlashCommand("reminder"),
        Pattern(r"\bremind me\b(?P<request>.+)"),
    )

    def __init__(
        self,
        store: ReminderStore,
        limits: ReminderLimits | None = None,
        *,
        on_added: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._limits = limits or ReminderLimits()
        self._on_added = on_added  # wakes the dispatcher: the new one may be due first
        self._clock = clock

    def arguments(self, intent: Intent) -> dict[str, Any]:
        if "request" in intent.groups:
            return {"action": "add", "request": intent.groups["request"]}
        command = intent.trigger.name if isinstance(intent.trigger, SlashCommand) else ""
        words = intent.text.split(maxsplit=1)
        first = words[0].lower() if words else ""
        if command == "reminders" or first in ("", "list"):
            return {"action": "list"}
        if first in ("cancel", "delete", "remove"):
            return {"action": "cancel", "id": words[1].strip() if len(words) > 1 else ""}
        return {"action": "add", "request": intent.text}

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        action = args["action"]
        if action == "list":
            return await self._list(context)
        if action == "cancel":
            return await self._cancel(context, str(args.get("id", "")))
        return await self._add(context, str(args.get("request", "")))

    async def _add(self, context: SkillContext, request: str) -> SkillResult:
        zone = self._zone(context)
        now = self._clock()
        wanted = parse_reminder(request, now=now, zone=zone, max_ahead=self._limits.max_ahead)
        reminder = await self._store.add(
            NewReminder(
                user=context.user,
                character_id=context.character_id,
                conversation_id=context.conversation_id,
                text=wanted.text,
                due_at=wanted.due_at,
                channel=context.channel if context.chat else None,
                chat=context.chat,
            ),
            now=now,
            max_pending=self._max_pending(context),
        )
        self._on_added()
        when = _when(reminder.due_at, zone, now)
        text = f"OK, I will remind you to {reminder.text} {when}. (id {reminder.short_id})"
        return SkillResult(text=text, data=_data(reminder, zone))

    async def _list(self, context: SkillContext) -> SkillResult:
        zone = self._zone(context)
        now = self._clock()
        found = await self._store.pending(context.user, context.character_id)
        if not found:
            return SkillResult(text="You have no reminders with me.", data={"reminders": []})
        lines = [f"{r.short_id}: {r.text}, {_when(r.due_at, zone, now)}" for r in found]
        return SkillResult(
            text="Your reminders:\n" + "\n".join(lines),
            data={"reminders": [_data(r, zone) for r in found]},
        )

    async def _cancel(self, context: SkillContext, reminder_id: str) -> SkillResult:
        if not reminder_id:
            raise InvalidInput("say which reminder: /remind cancel <id> (/reminders lists them)")
        cancelled = await self._store.cancel(context.user, reminder_id)
        if cancelled is None:
            raise InvalidInput(
                f"no waiting reminder has the id {reminder_id!r}; /reminders lists them"
            )
        return SkillResult(
            text=f"Cancelled: {cancelled.text}.", data={"cancelled": cancelled.short_id}
        )

    def _zone(self, context: SkillContext) -> ZoneInfo:
        configured = context.options.get("timezone")
        name = context.timezone or (configured if isinstance(configured, str) else None)
        return find_zone(name or self._limits.default_timezone)

    def _max_pending(self, context: SkillContext) -> int:
        wanted = context.options.get("max_pending")
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
            return min(wanted, self._limits.max_pending)  # a character only lowers it
        return self._limits.max_pending


def _when(due: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``at 18:30 (Europe/Paris)``, with the day when it is not today, and how long until."""
    local = due.astimezone(zone)
    today = now.astimezone(zone).date()
    day = "" if local.date() == today else f" on {local:%a} {local.day} {local:%b}"
    return f"at {local:%H:%M}{day} ({zone.key}), in {_span(due - now)}"


def _span(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    return " ".join(f"{amount} {unit}" for amount, unit in parts if amount)


def _data(reminder: Reminder, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": reminder.short_id,
        "text": reminder.text,
        "due": reminder.due_at.astimezone(zone).isoformat(timespec="minutes"),
    }
