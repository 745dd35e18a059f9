"""Chat-platform channels, as the core sees them: the normalised platform message, and the
ports the channel adapters keep their durable state behind (docs/channels.md).

The ``Channel`` port itself is in ``core.ports``; these are its value types and the two stores
it needs: the outbox (replies not yet delivered) and the directory (who is who on which
platform, which character answers in which chat, which conversation a chat continues).
"""

from __future__ import annotations

import abc
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from personae.core.ports import Resource


@dataclass(frozen=True, slots=True)
class PlatformMessage:
    """A message from a chat platform or device, normalised: who wrote what, where."""

    platform: str  # the channel's configured name, e.g. "telegram"
    platform_user: str  # the sender's id on the platform
    chat: str  # where the answer goes: a chat, a DM, a device
    text: str
    message_id: str | None = None  # the platform's id of this message (for replies, dedupe)
    reply_to: str | None = None  # the platform message this one answers
    sent_at: datetime | None = None
    user_name: str | None = None  # a display name, for logs and prompts
    group: bool = False  # a group chat: the bot answers only when addressed
    mentioned: bool = False  # the bot was mentioned or replied to
    attachments: tuple[Mapping[str, Any], ...] = ()  # metadata only: kind, name, size, id
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


Receive = Callable[[PlatformMessage], Awaitable[None]]


# --- the outbox ------------------------------------------------------------------------------

OutboxAction = Literal["send", "edit"]


@dataclass(frozen=True, slots=True)
class NewOutboxItem:
    """A platform message to deliver. ``dedupe_key`` makes enqueuing the same part twice (a
    replayed event stream) a no-op. ``edit`` replaces the text of ``target``."""

    channel: str
    chat: str
    text: str
    dedupe_key: str
    action: OutboxAction = "send"
    target: str | None = None  # the platform message to edit
    reply_to: str | None = None  # the platform message this one answers


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    channel: str
    chat: str
    text: str
    dedupe_key: str
    action: OutboxAction
    target: str | None
    reply_to: str | None
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


class ChannelOutbox(Resource, abc.ABC):
    """Outbound platform messages, kept until delivered or given up on."""

    @abc.abstractmethod
    async def enqueue(self, items: Sequence[NewOutboxItem], now: datetime) -> int:
        """Store ``items`` in one transaction, due at ``now``; those whose ``dedupe_key`` is
        already known are skipped. Returns how many were new."""

    @abc.abstractmethod
    async def due(self, channel: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """The oldest pending item of each of the channel's chats, where it is due by ``now``
        (a chat's later items wait for its earlier ones: parts arrive in order)."""

    @abc.abstractmethod
    async def next_due_at(self, channel: str) -> datetime | None:
        """When the channel's earliest pending item is due; None if nothing is pending."""

    @abc.abstractmethod
    async def delivered(self, item_id: int, now: datetime, platform_id: str | None) -> None: ...

    @abc.abstractmethod
    async def retry_later(self, item_id: int, at: datetime, error: str) -> None:
        """Count a failed attempt and make the item due again at ``at``."""

    @abc.abstractmethod
    async def give_up(self, item_id: int, now: datetime, error: str) -> None:
        """Stop trying (a permanent refusal, or too many attempts); the row stays for audit."""

    @abc.abstractmethod
    async def retarget(self, item_id: int, action: OutboxAction, target: str | None) -> None:
        """Change what the item does (an edit whose message is gone becomes a send)."""

    @abc.abstractmethod
    async def reschedule_all(self, channel: str, now: datetime) -> None:
        """Make every pending item of the channel due at ``now`` (the platform is back)."""

    @abc.abstractmethod
    async def pending(self, channel: str) -> int: ...


# --- the directory ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A turn a channel started and has not yet handed to the outbox: after a restart its
    reply is read back from the event log and delivered."""

    channel: str
    chat: str
    user: str  # the Personae (external) user id
    conversation_id: str
    reply_to: str  # the user message's id in the store
    after_seq: int  # the turn's events come after this seq
    platform_message: str | None  # the platform message to answer


class ChannelDirectory(Resource, abc.ABC):
    """Identities, link codes, chat bindings, chat conversations and pending replies."""

    @abc.abstractmethod
    async def user_for(self, platform: str, platform_user: str) -> str | None:
        """The Personae user a platform user is linked to, or None (never linked)."""

    @abc.abstractmethod
    async def link(self, platform: str, platform_user: str, user: str, now: datetime) -> None:
        """Map the platform user to ``user`` (replacing an earlier link)."""

    @abc.abstractmethod
    async def add_link_code(self, code_hash: str, user: str, expires_at: datetime) -> None: ...

    @abc.abstractmethod
    async def redeem_link_code(self, code_hash: str, now: datetime) -> str | None:
        """The user the code was issued to, if it exists and has not expired; the code is
        deleted either way, so it works once."""

    @abc.abstractmethod
    async def binding(self, platform: str, chat: str) -> str | None:
        """The character bound to the chat (``/character``), or None."""

    @abc.abstractmethod
    async def bind(self, platform: str, chat: str, character_id: str) -> None: ...

    @abc.abstractmethod
    async def chat_conversation(
        self, platform: str, chat: str, user: str, character_id: str
    ) -> str | None: ...

    @abc.abstractmethod
    async def set_chat_conversation(
        self, platform: str, chat: str, user: str, character_id: str, conversation_id: str | None
    ) -> None:
        """Remember (or with None, forget) the conversation the chat continues."""

    @abc.abstractmethod
    async def add_pending_reply(self, reply: PendingReply) -> None: ...

    @abc.abstractmethod
    async def remove_pending_reply(self, channel: str, reply_to: str) -> None: ...

    @abc.abstractmethod
    async def pending_replies(self, channel: str) -> list[PendingReply]: ...


# --- what the HTTP transport needs --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pushed:
    """What a pushed request held, and what to answer the platform: ``answer`` replaces the
    default ``{"accepted": n}`` body (Slack's URL verification wants its challenge back)."""

    messages: Sequence[PlatformMessage] = ()
    answer: Mapping[str, Any] | None = None


class PushChannel(abc.ABC):
    """A channel whose platform pushes updates over HTTP (signed webhooks, Telegram's webhook
    mode, Slack's Events API): the transport hands it each request's headers and body."""

    @abc.abstractmethod
    async def accept(self, headers: Mapping[str, str], body: bytes) -> Pushed:
        """Verify and read one pushed request. Raises ``NotAuthenticated`` for a bad
        signature or secret, ``InvalidInput`` for a body it cannot read."""


class ChannelGateway(abc.ABC):
    """The running channels, as the HTTP transport sees them."""

    @abc.abstractmethod
    async def push(self, name: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Hand a pushed request to channel ``name``; returns the body to answer with
        (``{"accepted": n}`` unless the platform wants something else). ``NotFound`` when no
        push channel has that name."""

    @abc.abstractmethod
    async def issue_link_code(self, user: str) -> tuple[str, datetime]:
        """A one-time code that links a platform user to ``user``, and its expiry."""

    @abc.abstractmethod
    def health(self) -> dict[str, str]:
        """Each channel's state: ``up``, ``starting``, ``reconnecting: <error>``, ..."""


# --- link codes ------------------------------------------------------------------------------

LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: typed from a screen


def new_link_code(length: int = 8) -> str:
    """A one-time code a user types into a chat to link it to their account."""
    return "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(length))


def hash_link_code(code: str) -> str:
    """Only the hash is stored: a database leak does not hand out live codes."""
    normalised = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalised.encode()).hexdigest()
