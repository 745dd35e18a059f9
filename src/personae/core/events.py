"""What a turn emits, in order: one ``MessageAck``, any number of ``MessageDelta``, one
``MessageDone``. A turn that fails raises instead of emitting ``MessageDone``; transports turn
the exception into their own error frame or status."""

from __future__ import annotations

from dataclasses import dataclass

from personae.core.types import Conversation, Message, Usage


@dataclass(frozen=True, slots=True)
class MessageAck:
    """The user's message is durable: stored and committed before this is emitted."""

    conversation: Conversation
    message: Message


@dataclass(frozen=True, slots=True)
class MessageDelta:
    conversation_id: str
    text: str


@dataclass(frozen=True, slots=True)
class MessageDone:
    """The reply is complete and stored."""

    conversation_id: str
    message: Message
    usage: Usage
    latency_ms: float
    time_to_first_token_ms: float | None
    finish_reason: str


TurnEvent = MessageAck | MessageDelta | MessageDone
