"""Value types shared by the core, its ports and every adapter."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(enum.StrEnum):
    """How a stored message came to be; only ``COMPLETE`` replies are whole."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # the backend failed midway; the text is what arrived
    CANCELLED = "cancelled"  # the client went away or cancelled; the text is what arrived


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt, as a backend sees it."""

    role: Role
    content: str
    name: str | None = None  # speaker name, used by transcript-style prompt formats


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a ChatModel is asked to continue."""

    messages: tuple[ChatMessage, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    assistant_name: str = "Assistant"
    user_name: str = "User"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ModelChunk:
    """One piece of a streamed completion: text, and on the last chunk why it stopped and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    external_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    user_id: str
    character_id: str
    created_at: datetime
    updated_at: datetime
    last_seq: int = 0  # the newest message's seq
    last_event_seq: int = 0  # the newest stored event's seq


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message about to be stored; the store assigns id, seq and timestamp."""

    role: Role
    content: str
    status: MessageStatus = MessageStatus.COMPLETE
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    character_version: str | None = None  # hash of the character version that wrote a reply


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    role: Role
    content: str
    created_at: datetime
    status: MessageStatus = MessageStatus.COMPLETE
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    character_version: str | None = None  # hash of the character version that wrote a reply


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """The result of storing a user message: what exists now, and what this turn created.

    The ``created_*`` flags let a turn that failed before producing anything be discarded
    without leaving a trace (see ``ConversationStore.discard_turn``).
    """

    user: User
    conversation: Conversation
    message: Message
    created_user: bool
    created_conversation: bool
    duplicate: bool = False  # the idempotency key was seen: ``message`` is the one stored then


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored event of a conversation. A run of deltas is one record covering
    ``seq..last_seq``; every other event covers one seq."""

    seq: int
    last_seq: int
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated key's identity, and the end user it acts for."""

    subject: str
    roles: frozenset[str] = frozenset({"user"})


@dataclass(frozen=True, slots=True)
class SamplingOverrides:
    """Generation settings a caller or a character asks for; ``None`` keeps the default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None

    def over(self, base: GenerationParams) -> GenerationParams:
        return GenerationParams(
            max_tokens=self.max_tokens if self.max_tokens is not None else base.max_tokens,
            temperature=self.temperature if self.temperature is not None else base.temperature,
            top_p=self.top_p if self.top_p is not None else base.top_p,
            stop=base.stop,
            seed=base.seed,
        )


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """The one internal representation of a user message, whatever transport brought it."""

    user: str  # external user id, unique within the deployment
    character_id: str
    text: str
    conversation_id: str | None = None  # None: the user's latest with this character, or new
    new_conversation: bool = False  # start a new conversation instead of the latest
    channel: str = "http"
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    idempotency_key: str | None = None  # a retry with the same key never makes a second turn
    # True when the sender is told the message is stored before the reply (WebSocket ack): the
    # message then stays even if the reply fails. False (HTTP): a failed turn leaves no trace.
    durable_ack: bool = False
