"""What a turn emits, in order: one ``MessageAck``, a ``StateChanged`` when the character's
behaviour moved, any number of ``MessageDelta``, one ``MessageDone``. A turn that fails
raises instead of emitting ``MessageDone``; transports turn the exception into their own
error frame or status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from personae.core.types import Conversation, EventRecord, Message, Usage


@dataclass(frozen=True, slots=True)
class MessageAck:
    """The user's message is durable: stored and committed before this is emitted."""

    conversation: Conversation
    message: Message
    duplicate: bool = False  # a retried idempotency key: no new turn follows


@dataclass(frozen=True, slots=True)
class MessageDelta:
    conversation_id: str
    text: str
    speaker: str | None = None  # in a group: the character replying


@dataclass(frozen=True, slots=True)
class MessageDone:
    """The reply is complete and stored."""

    conversation_id: str
    message: Message
    usage: Usage
    latency_ms: float
    time_to_first_token_ms: float | None
    finish_reason: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The character's behaviour state moved this turn (stored before this is emitted).
    ``changes``: ``{"name", "old", "new"}`` per variable, ``name`` "state" for the state
    itself; ``state``: the whole state now (``state``, ``variables``, ``turn``)."""

    conversation_id: str
    character_id: str
    changes: tuple[dict[str, Any], ...]
    state: dict[str, Any]


TurnEvent = MessageAck | StateChanged | MessageDelta | MessageDone


# --- events as clients see them: numbered per conversation --------------------------------

ACK = "message.ack"
DELTA = "message.delta"
DONE = "message.done"
STATE = "state.changed"
ERROR = "error"
SWIPED = "message.swiped"  # another of a reply's alternatives is shown (no turn ran)


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """One event of a conversation's log; ``seq`` counts every event of the conversation,
    without gaps."""

    conversation_id: str
    seq: int
    event: str
    payload: dict[str, Any]


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "seq": message.seq,
        "role": message.role.value,
        "content": message.content,
        "status": message.status.value,
        "created_at": message.created_at.isoformat(),
        "model": message.model,
        "character_version": message.character_version,
        "speaker": message.speaker,
        "swipe_of": message.swipe_of,  # one of a reply's alternatives: the first of them
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
    }


def expand(conversation_id: str, record: EventRecord) -> list[ConversationEvent]:
    """The events a stored record holds: a run of deltas becomes one event per chunk."""
    if record.event == DELTA and "chunks" in record.payload:
        chunks = record.payload["chunks"]
        rest = {k: v for k, v in record.payload.items() if k != "chunks"}
        return [
            ConversationEvent(conversation_id, record.seq + i, DELTA, {**rest, "text": text})
            for i, text in enumerate(chunks)
        ]
    return [ConversationEvent(conversation_id, record.seq, record.event, record.payload)]


def compact(events: list[ConversationEvent]) -> list[EventRecord]:
    """Records to store for ``events``: each run of deltas becomes one record."""
    records: list[EventRecord] = []
    run: list[ConversationEvent] = []

    def close_run() -> None:
        if run:
            rest = {k: v for k, v in run[0].payload.items() if k != "text"}
            chunks = [e.payload["text"] for e in run]
            records.append(EventRecord(run[0].seq, run[-1].seq, DELTA, {**rest, "chunks": chunks}))
            run.clear()

    for event in events:
        if event.event == DELTA:
            run.append(event)
            continue
        close_run()
        records.append(EventRecord(event.seq, event.seq, event.event, event.payload))
    close_run()
    return records
