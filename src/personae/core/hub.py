"""ConversationHub: turns that outlive the connection that asked for them, with numbered events.

A WebSocket ``message.send`` becomes a turn task owned by the hub, not by the connection: a
client that drops mid-reply loses nothing, and every device watching the conversation sees
the same events. Each event gets the conversation's next ``seq`` (gap-free), is logged in the
store, and is published on the bus:

    ack     stored at once (the user message is durable before anyone hears of it)
    deltas  kept in the turn's buffer while it runs, stored as one record when it ends
    done / error  stored with the deltas, then published

``watch`` replays what a client missed and continues live, without gaps or duplicates: it
subscribes first, then reads the stored log and the running turn's buffer, and skips
anything at or below the last seq it delivered.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from personae.core.admission import Admission
from personae.core.event_replay import EventReplay
from personae.core.events import (
    ACK,
    DELTA,
    DONE,
    ERROR,
    STATE,
    SWIPED,
    ConversationEvent,
    MessageAck,
    MessageDelta,
    MessageDone,
    StateChanged,
    message_payload,
)
from personae.core.live_turn import EventOutlet, LiveTurn
from personae.core.observe import TurnObserver
from personae.core.orphan_turns import OrphanTurns
from personae.core.ports import (
    ConversationLock,
    ConversationStore,
    EventBus,
    InflightTurn,
    InflightTurns,
)
from personae.core.service import ChatService
from personae.core.sessions import SessionRegistry
from personae.core.types import Conversation, InboundMessage, Message, NewMessage
from personae.errors import (
    Busy,
    ConversationNotFound,
    Overloaded,
    PersonaeError,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to a send: where the message went. ``duplicate``: a retried idempotency key,
    and this is the original message (no new turn was started)."""

    conversation_id: str
    message_id: str
    message_seq: int
    ack_seq: int | None
    duplicate: bool = False


@dataclass(slots=True)
class _Turn:
    inbound: InboundMessage
    accepted: asyncio.Future[Accepted]
    live: LiveTurn | None = None

    @property
    def conversation_id(self) -> str | None:
        return self.live.conversation_id if self.live else None


class ConversationHub:
    def __init__(
        self,
        *,
        service: ChatService,
        store: ConversationStore,
        bus: EventBus,
        lock: ConversationLock,
        admission: Admission,
        sessions: SessionRegistry | None = None,
        reject_when_busy: bool = False,
        observer: TurnObserver | None = None,
        inflight: InflightTurns | None = None,
        node: str = "local",
    ) -> None:
        self._service = service
        self._store = store
        self._bus = bus
        self._lock = lock  # the hub's own: held while a turn's events are numbered and stored
        self._outlet = EventOutlet(store, bus)
        self._replay = EventReplay(store, bus)
        # Which node runs which turn: across nodes, the turns of a dead one are ended by another.
        self._orphans = OrphanTurns(
            store=store, bus=bus, lock=lock, inflight=inflight, outlet=self._outlet
        )
        self._node = node
        self._admission = admission
        self.observer = observer or TurnObserver()  # told of refused sends (the service: turns)
        self.sessions = sessions or SessionRegistry(idle_expiry_s=900.0)
        # A message for a conversation whose reply is still being generated waits its turn
        # (in arrival order), or with reject_when_busy is refused at once with ``Busy``.
        self._reject_when_busy = reject_when_busy
        self._busy: dict[tuple[str, str], int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._live: dict[str, LiveTurn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True

    @property
    def admission(self) -> Admission:
        """The process's admission control, shared with the transports that run turns
        themselves (HTTP, MCP), so one set of bounds covers every turn."""
        return self._admission

    @property
    def running_turns(self) -> int:
        """Turns holding a slot, whichever transport started them."""
        return self._admission.running

    @property
    def queued_turns(self) -> int:
        """Turns waiting for a free slot (admission control)."""
        return self._admission.queued

    def start(self, *, sweep_interval_s: float) -> None:
        """Start expiring idle sessions every ``sweep_interval_s``."""

        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(sweep_interval_s)
                await self.sessions.sweep()

        self._sweeper = asyncio.create_task(sweep_forever())

    async def send(self, inbound: InboundMessage) -> Accepted:
        """Start a turn; returns once its user message is stored (or was, for a retried key).
        Raises before anything is stored: ``Overloaded``, ``CharacterNotFound``, ..."""
        if not self._accepting:
            self.observer.request_rejected("shutting_down")
            raise Overloaded("the server is shutting down", retry_after=5.0)
        self._service.check(inbound)
        key = _lock_key(inbound)
        if self._reject_when_busy and self._busy.get(key):
            self.observer.request_rejected("busy")
            raise Busy("a reply is being generated in this conversation; try again after it")
        await self._admission.acquire()  # a refusal is counted by the admission's observer
        accepted: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._run(dataclasses.replace(inbound, durable_ack=True), accepted)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A caller that goes away stops waiting; the turn goes on.
        return await asyncio.shield(accepted)

    def cancel(self, conversation_id: str, user: str) -> bool:
        """Stop the conversation's running turn, if ``user`` owns it; True if one was running."""
        live = self._live.get(conversation_id)
        if live is None or live.user != user or live.task is None:
            return False
        live.cancel_reason = live.cancel_reason or "cancelled by the user"
        live.task.cancel()
        return True

    @asynccontextmanager
    async def watch(
        self, conversation_id: str, user: str, *, after_seq: int = 0
    ) -> AsyncIterator[AsyncIterator[ConversationEvent]]:
        """The conversation's events after ``after_seq``: missed ones first, then live ones.
        Raises ``ConversationNotFound`` unless ``user`` owns the conversation."""
        owner = await self._store.get_user(user)
        conversation = await self._store.get_conversation(conversation_id)
        if owner is None or conversation is None:
            raise ConversationNotFound(conversation_id)
        if conversation.user_id != owner.id:  # a group's other users may watch it too
            group = await self._store.get_group(conversation_id)
            if group is None or user not in group.participants:
                raise ConversationNotFound(conversation_id)
        self.sessions.add_watcher(conversation_id, user)
        try:
            async with self._bus.subscribe(conversation_id) as live:
                yield self._replay.then_live(
                    conversation_id, after_seq, live, lambda: self._live.get(conversation_id)
                )
        finally:
            self.sessions.remove_watcher(conversation_id)

    async def post(
        self,
        user: str,
        character_id: str,
        conversation_id: str,
        message: NewMessage,
        *,
        reason: str = "posted",
    ) -> Message:
        """Add a message no user message asked for (a reminder) to a one-to-one conversation:
        stored, then logged and published as a ``message.done`` without ``reply_to`` (its
        ``finish_reason`` is ``reason``), ordered with the conversation's turns by their lock."""
        key = "\x00".join((user, character_id))
        async with self._lock.hold(key):
            await self._orphans.end(key)
            stored = await self._store.append_message(conversation_id, message)
            conversation = await self._store.get_conversation(conversation_id)
            if conversation is None:  # deleted between the two
                raise ConversationNotFound(conversation_id)
            live = LiveTurn(conversation_id, user, "", conversation.last_event_seq + 1)
            payload = {
                "reply_to": None,
                "message": message_payload(stored),
                "usage": {"prompt_tokens": 0, "completion_tokens": message.completion_tokens},
                "latency_ms": 0.0,
                "time_to_first_token_ms": None,
                "finish_reason": reason,
            }
            event = live.emit(DONE, payload)
            await self._outlet.store(live)
            await self._outlet.publish(event)
            return stored

    async def redo(self, inbound: InboundMessage) -> Accepted:
        """A regenerate or an edit (``inbound.redo``) in the user's own conversation: sent like
        a message, to the conversation's character."""
        conversation = await self._owned(inbound.user, inbound.conversation_id or "")
        return await self.send(dataclasses.replace(inbound, character_id=conversation.character_id))

    async def choose_swipe(self, user: str, conversation_id: str, message_id: str) -> Message:
        """Show another of the latest reply's alternatives, for every device: stored, then
        logged and published as ``message.swiped``, ordered with the conversation's turns."""
        conversation = await self._owned(user, conversation_id)
        key = "\x00".join((user, conversation.character_id))
        async with self._lock.hold(key):
            await self._orphans.end(key)
            chosen = await self._store.choose_swipe(conversation_id, message_id)
            current = await self._store.get_conversation(conversation_id)
            if current is None:  # deleted between the two
                raise ConversationNotFound(conversation_id)
            live = LiveTurn(conversation_id, user, "", current.last_event_seq + 1)
            event = live.emit(SWIPED, {"message": message_payload(chosen)})
            await self._outlet.store(live)
            await self._outlet.publish(event)
            return chosen

    async def _owned(self, user: str, conversation_id: str) -> Conversation:
        """The user's own conversation; someone else's is reported missing, not forbidden."""
        owner = await self._store.get_user(user)
        conversation = await self._store.get_conversation(conversation_id)
        if owner is None or conversation is None or conversation.user_id != owner.id:
            raise ConversationNotFound(conversation_id)
        return conversation

    async def end_orphans(self) -> int:
        """End the turns of nodes that stopped (``core/orphan_turns.py``); how many."""
        return await self._orphans.end_all()

    async def close(self, *, grace_s: float) -> None:
        """Stop accepting; let running turns finish within ``grace_s``; cancel the rest (they
        end with an ``error`` event that says why)."""
        self._accepting = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        for live in list(self._live.values()):
            if live.task is not None and not live.task.done():
                live.cancel_reason = "the server is shutting down"
                live.task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._service.drain()

    async def _run(self, inbound: InboundMessage, accepted: asyncio.Future[Accepted]) -> None:
        turn = _Turn(inbound, accepted)
        key = _lock_key(inbound)
        self._busy[key] = self._busy.get(key, 0) + 1
        lock_key = "\x00".join(key)
        try:
            async with self._lock.hold(lock_key):
                await self._orphans.end(lock_key)
                try:
                    await self._drive_to_an_end(turn)
                finally:  # inside the lock: the next holder must not find this turn open
                    if turn.live is not None:
                        await self._orphans.forget(lock_key)
        except Exception as exc:
            if not accepted.done():  # before the ack: the sender hears of it in its answer
                accepted.set_exception(exc)
            elif not isinstance(exc, PersonaeError):
                log.exception("turn failed", conversation=turn.conversation_id)
        except BaseException:
            if not accepted.done():
                accepted.set_exception(
                    Overloaded("the turn was stopped before it began", retry_after=1.0)
                )
            raise
        finally:
            self._admission.release()
            if self._busy[key] == 1:
                del self._busy[key]
            else:
                self._busy[key] -= 1
            live = turn.live
            if live is not None:
                self.sessions.end_turn(live.conversation_id)
                if self._live.get(live.conversation_id) is live:
                    del self._live[live.conversation_id]

    async def _drive_to_an_end(self, turn: _Turn) -> None:
        """Run the turn; once acknowledged, every ending (done, failure, cancellation) is an
        event in the log, written while the hub's lock still orders this conversation."""
        try:
            await self._drive(turn)
        except asyncio.CancelledError:
            live = turn.live
            if live is None:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # our own cancel(): it ends the turn, not the task's owner
            await self._finish_with_error(live, "cancelled", live.cancel_reason or "cancelled")
        except Exception as exc:
            if turn.live is None:
                raise
            error = exc if isinstance(exc, PersonaeError) else PersonaeError("internal error")
            await self._finish_with_error(turn.live, error.code, error.message, error.retryable)
            raise

    async def _drive(self, turn: _Turn) -> None:
        async with aclosing(self._service.turn(turn.inbound)) as events:
            async for event in events:
                if isinstance(event, MessageAck):
                    if event.duplicate:
                        turn.accepted.set_result(_accepted(event, ack_seq=None))
                        return
                    turn.live = await self._start(turn.inbound, event)
                    turn.accepted.set_result(_accepted(event, ack_seq=turn.live.events[0].seq))
                elif isinstance(event, MessageDelta):
                    assert turn.live is not None
                    payload = {"reply_to": turn.live.reply_to, "text": event.text}
                    if event.speaker is not None:  # a group: whose reply this is
                        payload["speaker"] = event.speaker
                    await self._outlet.publish(turn.live.emit(DELTA, payload))
                elif isinstance(event, StateChanged):  # logged with the deltas, like them
                    assert turn.live is not None
                    state = _state_payload(turn.live.reply_to, event)
                    await self._outlet.publish(turn.live.emit(STATE, state))
                elif isinstance(event, MessageDone):
                    assert turn.live is not None
                    done = turn.live.emit(DONE, _done_payload(turn.live.reply_to, event))
                    await self._outlet.store(turn.live)
                    await self._outlet.publish(done)

    async def _start(self, inbound: InboundMessage, ack: MessageAck) -> LiveTurn:
        conversation = ack.conversation
        live = LiveTurn(
            conversation.id, inbound.user, ack.message.id, conversation.last_event_seq + 1
        )
        live.task = asyncio.current_task()
        self.sessions.begin_turn(conversation.id, inbound.user)
        payload = {"message": message_payload(ack.message), "character": conversation.character_id}
        if inbound.redo is not None:  # the message was shown before: its replies get replaced
            payload["redo"] = inbound.redo.value
        event = live.emit(ACK, payload)
        lock_key = "\x00".join(_lock_key(inbound))
        # Registered first: no acknowledged turn goes unregistered.
        running = InflightTurn(lock_key, conversation.id, live.reply_to, event.seq, self._node)
        await self._orphans.begin(running)
        try:
            await self._outlet.store(live)
        except Exception:
            await self._orphans.forget(lock_key)
            raise
        self._live[conversation.id] = live
        await self._outlet.publish(event)
        return live

    async def _finish_with_error(
        self, live: LiveTurn, code: str, message: str, retryable: bool = False
    ) -> None:
        payload = {"reply_to": live.reply_to, "code": code, "message": message}
        event = live.emit(ERROR, {**payload, "retryable": retryable})
        await asyncio.shield(self._outlet.store(live))
        await self._outlet.publish(event)


def _lock_key(inbound: InboundMessage) -> tuple[str, str]:
    """Whose turns run one at a time: a user's with one character; a group's, all of them
    (its users write to one conversation)."""
    if inbound.character_id:
        return inbound.user, inbound.character_id
    return "group", inbound.conversation_id or ""


def _accepted(ack: MessageAck, *, ack_seq: int | None) -> Accepted:
    return Accepted(
        conversation_id=ack.conversation.id,
        message_id=ack.message.id,
        message_seq=ack.message.seq,
        ack_seq=ack_seq,
        duplicate=ack.duplicate,
    )


def _state_payload(reply_to: str, changed: StateChanged) -> dict[str, Any]:
    return {
        "reply_to": reply_to,
        "character": changed.character_id,
        "changes": list(changed.changes),
        "state": changed.state,
    }


def _done_payload(reply_to: str, done: MessageDone) -> dict[str, Any]:
    return {
        "reply_to": reply_to,
        "message": message_payload(done.message),
        "usage": {
            "prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
        },
        "latency_ms": round(done.latency_ms, 3),
        "time_to_first_token_ms": (
            round(done.time_to_first_token_ms, 3) if done.time_to_first_token_ms else None
        ),
        "finish_reason": done.finish_reason,
    }
