"""A running turn's numbered events, and where they go: the store's log (durable) and the
bus (live)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from personae.core.events import ConversationEvent, compact
from personae.core.ports import ConversationStore, EventBus
from personae.errors import CoordinationError

log = structlog.get_logger(__name__)


class LiveTurn:
    """A running turn's numbering and its events not yet stored."""

    def __init__(self, conversation_id: str, user: str, reply_to: str, next_seq: int) -> None:
        self.conversation_id = conversation_id
        self.user = user
        self.reply_to = reply_to
        self.next_seq = next_seq
        self.events: list[ConversationEvent] = []  # everything this turn emitted, in order
        self.stored_through = next_seq - 1
        self.cancel_reason: str | None = None
        self.task: asyncio.Task[None] | None = None

    def emit(self, event: str, payload: dict[str, Any]) -> ConversationEvent:
        record = ConversationEvent(self.conversation_id, self.next_seq, event, payload)
        self.next_seq += 1
        self.events.append(record)
        return record

    def unstored(self) -> list[ConversationEvent]:
        return [e for e in self.events if e.seq > self.stored_through]


class EventOutlet:
    def __init__(self, store: ConversationStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def store(self, live: LiveTurn) -> None:
        """Log what ``live`` emitted since it last stored (a run of deltas as one record)."""
        pending = live.unstored()
        await self._store.append_events(live.conversation_id, compact(pending))
        live.stored_through = pending[-1].seq

    async def publish(self, event: ConversationEvent) -> None:
        """Live delivery; the event is stored (or will be with its reply), so a bus that
        cannot be reached costs live viewers a resume, not the turn."""
        try:
            await self._bus.publish(event)
        except CoordinationError as exc:
            log.warning(
                "event not published",
                conversation=event.conversation_id,
                seq=event.seq,
                error=str(exc),
            )
