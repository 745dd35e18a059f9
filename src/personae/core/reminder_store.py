"""Reminders as the core sees them: a message the character sends a user at a time, and the
port that keeps them durable (``storage/sqlite/reminders.py``).

A reminder goes ``pending`` -> ``claimed`` (by a dispatcher, in one transaction, before it is
delivered) -> ``delivered``; or ``cancelled`` by the user; or ``failed`` after too many
attempts. A claim that is never settled (the process died while delivering) is taken again
after a lease; delivery is idempotent on the reminder's id, so the user hears it once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from personae.core.ports import Resource

ReminderState = Literal["pending", "claimed", "delivered", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class NewReminder:
    user: str  # the external user id
    character_id: str
    conversation_id: str  # where the reminder is posted
    text: str
    due_at: datetime
    channel: str | None = None  # the chat platform the user set it from, if any
    chat: str | None = None  # and the chat there


@dataclass(frozen=True, slots=True)
class Reminder:
    id: str
    user: str
    character_id: str
    conversation_id: str
    text: str
    due_at: datetime
    created_at: datetime
    state: ReminderState = "pending"
    attempts: int = 0  # claims so far; above one, an earlier delivery may have half happened
    channel: str | None = None
    chat: str | None = None

    @property
    def short_id(self) -> str:
        """What users type to cancel it (``/remind cancel 3f9a2c``)."""
        return self.id.removeprefix("rem_")[:6]


class ReminderStore(Resource, abc.ABC):
    @abc.abstractmethod
    async def add(self, reminder: NewReminder, *, now: datetime, max_pending: int) -> Reminder:
        """Store it, in one transaction with the check that the user has fewer than
        ``max_pending`` pending reminders (else ``InvalidInput`` saying so)."""

    @abc.abstractmethod
    async def pending(self, user: str, character_id: str | None = None) -> list[Reminder]:
        """The user's reminders not yet delivered, soonest first."""

    @abc.abstractmethod
    async def cancel(self, user: str, reminder_id: str) -> Reminder | None:
        """Cancel the user's pending reminder whose id (or its short form) is given; None when
        there is none such."""

    @abc.abstractmethod
    async def claim_due(self, now: datetime, *, lease_s: float, limit: int = 50) -> list[Reminder]:
        """Mark due reminders ``claimed`` and return them, in one transaction: two
        dispatchers never claim the same one. Claims older than ``lease_s`` are taken again."""

    @abc.abstractmethod
    async def delivered(self, reminder_id: str, now: datetime) -> None: ...

    @abc.abstractmethod
    async def retry_later(self, reminder_id: str, at: datetime, error: str) -> None:
        """Back to ``pending``, due at ``at``."""

    @abc.abstractmethod
    async def give_up(self, reminder_id: str, now: datetime, error: str) -> None: ...

    @abc.abstractmethod
    async def next_due_at(self) -> datetime | None:
        """When the earliest pending reminder is due; None when none is."""
