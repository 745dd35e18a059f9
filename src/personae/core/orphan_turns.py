"""Turns whose node died, ended by whichever node finds them (``coordination: redis``).

A turn registers itself in ``InflightTurns`` once acknowledged and leaves before it lets go of
its lock. One still registered when its lock is free again is not running anywhere: its node
stopped (the lease expired). Under that lock, what it published is stored from the bus and the
turn ends with an ``error`` event (``interrupted``, retryable); a turn whose ending was stored
after all is only forgotten. The sweep (``end_all``) finds them by their node's silence; the
next turn of the same lock key ends one first, before it numbers its own events.
"""

from __future__ import annotations

import asyncio

import structlog

from personae.core.event_replay import PAGE
from personae.core.events import DONE, ERROR
from personae.core.live_turn import EventOutlet, LiveTurn
from personae.core.ports import (
    ConversationLock,
    ConversationStore,
    EventBus,
    InflightTurn,
    InflightTurns,
)
from personae.errors import CoordinationError

log = structlog.get_logger(__name__)

INTERRUPTED = "the server writing this reply stopped; send the message again"


class OrphanTurns:
    def __init__(
        self,
        *,
        store: ConversationStore,
        bus: EventBus,
        lock: ConversationLock,
        inflight: InflightTurns | None,
        outlet: EventOutlet,
    ) -> None:
        self._store = store
        self._bus = bus
        self._lock = lock
        self._inflight = inflight  # None: nothing is registered, nothing to recover
        self._outlet = outlet

    async def begin(self, turn: InflightTurn) -> None:
        if self._inflight is not None:
            await self._inflight.begin(turn)

    async def forget(self, key: str) -> None:
        """The turn under ``key`` has ended (stored); a failure to say so is only logged: the
        next holder of the lock finds it ended and forgets it then."""
        if self._inflight is None:
            return
        try:
            await self._inflight.end(key)
        except CoordinationError as exc:
            log.warning("in-flight turn not cleared", key=key, error=str(exc))

    async def end_all(self) -> int:
        """End the turns of nodes that stopped, each once its lock is free; how many."""
        if self._inflight is None:
            return 0
        orphans = await self._inflight.orphans()
        ended = await asyncio.gather(*(self._end_when_free(t.key) for t in orphans))
        return sum(ended)

    async def _end_when_free(self, key: str) -> bool:
        async with self._lock.hold(key):
            return await self.end(key)

    async def end(self, key: str) -> bool:
        """With ``key``'s lock held: end the turn still registered under it, if any. True if
        it was ended here (it had not ended)."""
        if self._inflight is None:
            return False
        turn = await self._inflight.get(key)
        if turn is None:
            return False
        conversation = await self._store.get_conversation(turn.conversation_id)
        ended = conversation is None or await self._has_ended(turn)
        if conversation is not None and not ended:
            published = await self._bus.recent(
                turn.conversation_id, after_seq=conversation.last_event_seq
            )
            first = published[0].seq if published else conversation.last_event_seq + 1
            live = LiveTurn(turn.conversation_id, "", turn.reply_to, first)
            live.events.extend(published)  # stored with the error: the log stays gap-free
            live.next_seq = published[-1].seq + 1 if published else first
            payload = {"reply_to": turn.reply_to, "code": "interrupted", "message": INTERRUPTED}
            error = live.emit(ERROR, {**payload, "retryable": True})
            await self._outlet.store(live)
            await self._outlet.publish(error)
            log.warning(
                "turn of a stopped node ended",
                conversation=turn.conversation_id,
                node=turn.node,
                reply_to=turn.reply_to,
            )
        await self._inflight.end(key)
        return not ended

    async def _has_ended(self, turn: InflightTurn) -> bool:
        """Whether the stored log has the turn's ``message.done`` or ``error``."""
        after = turn.ack_seq
        while True:
            page = await self._store.list_events(turn.conversation_id, after_seq=after, limit=PAGE)
            for record in page:
                if (
                    record.event in (DONE, ERROR)
                    and record.payload.get("reply_to") == turn.reply_to
                ):
                    return True
            if len(page) < PAGE:
                return False
            after = page[-1].last_seq
