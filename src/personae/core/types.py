"""Value types shared by the core, its ports and every adapter."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # overrides.py builds on these types
    from personae.core.overrides import ExperimentTag, Overrides


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # a skill's result answering a model's tool call; in prompts, never stored


#: The roles a character's own text (depth prompts, lore) and stored messages may take.
TEXT_ROLES = frozenset({Role.SYSTEM, Role.USER, Role.ASSISTANT})


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
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message: the calls it asked for
    tool_call_id: str | None = None  # a tool message: the call it answers


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model (OpenAI ``tools``): a skill's name, description and the
    JSON-Schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call the model asked for; ``arguments`` is the JSON text it wrote,
    unchecked (it may not even be JSON)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams them: ``index`` says which call;
    the first piece of a call carries its ``id`` and ``name``, and ``arguments`` arrives in
    fragments to be concatenated (``core.tool_calls.ToolCallAssembler``)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


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
    tools: tuple[ToolSpec, ...] = ()  # offered only to backends with ``supports_tools``
    tool_choice: str = "auto"  # "auto": the model may call tools; "none": it must answer


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ModelChunk:
    """One piece of a streamed completion: text or tool-call pieces, and on the last chunk why
    it stopped and usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


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
    speaker: str | None = None  # in a group: the character that replied, the user who wrote
    # A regenerated reply: the first reply of the alternatives it joins (its "swipes"); the
    # store hides the others when it is stored.
    swipe_of: str | None = None


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
    speaker: str | None = None  # in a group: the character that replied, the user who wrote
    swipe_of: str | None = None  # one of a reply's alternatives: the first reply of them
    # Not in the conversation's history: an alternative not chosen, or a reply to a message
    # edited since. Kept, so the user can swipe back to it.
    hidden: bool = False
    edited_at: datetime | None = None  # a user message edited after it was sent


def newest(messages: Sequence[Message], limit: int) -> list[Message]:
    """The last ``limit`` of ``messages`` (oldest first, as they are)."""
    return list(messages[-limit:]) if limit > 0 else []


class Redo(enum.StrEnum):
    """A turn that answers the conversation's last user message again instead of a new one."""

    REGENERATE = "regenerate"  # another reply to it, kept next to the earlier ones
    EDIT = "edit"  # its text replaced, the replies to the old text hidden, a new reply


@dataclass(frozen=True, slots=True)
class GroupMember:
    character_id: str
    muted: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """A conversation with several characters and, besides its owner, maybe more users."""

    conversation_id: str
    members: tuple[GroupMember, ...]
    participants: tuple[str, ...] = ()  # external ids of users other than the owner
    seed: str = ""  # who speaks is drawn from it (and the turn): a seed replays the same way


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
    user_turn: int = 0  # the user's messages in the conversation, this one included (0: unknown)
    reopened: bool = False  # a redo: ``message`` was stored before (discarding keeps it)
    swipe_of: str | None = None  # a regenerate: the alternatives the new reply joins
    #: The conversation's newest visible messages (``message`` the last) as the store saw them
    #: when it stored ``message``, if it had them at hand; ``recent_complete``: every one the
    #: conversation has. The prompt then needs no read of its own (``newest``).
    recent: tuple[Message, ...] | None = None
    recent_complete: bool = False

    def newest(self, limit: int) -> list[Message] | None:
        """The newest ``limit`` messages from ``recent``; None when it cannot tell (it holds
        fewer and the conversation has more, or the store gave none): read them."""
        recent = self.recent
        if recent is None or (len(recent) < limit and not self.recent_complete):
            return None
        return newest(recent, limit)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored event of a conversation. A run of deltas is one record covering
    ``seq..last_seq``; every other event covers one seq."""

    seq: int
    last_seq: int
    event: str
    payload: dict[str, Any]


class AccessRole(enum.StrEnum):
    """What a caller may do (docs/operations.md, "Security")."""

    ADMIN = "admin"  # everything, for anyone
    USER = "user"  # only as itself: its own conversations, events and messages
    SERVICE = "service"  # on behalf of the end users of its own tenant; never admin routes


DEFAULT_TENANT = "default"
# Separates a tenant from a user name in the user ids of other tenants ("acme/alice"); a name
# that a non-admin caller gives may not contain it, so no caller can step into another tenant.
TENANT_SEPARATOR = "/"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an authenticated key's (or token's) owner, its role and tenant."""

    subject: str
    role: AccessRole = AccessRole.USER
    tenant: str = DEFAULT_TENANT
    key_id: str | None = None  # the API key that authenticated; None for a token or open mode

    @property
    def is_admin(self) -> bool:
        return self.role is AccessRole.ADMIN

    def user_id(self, name: str) -> str:
        """The user id ``name`` has in this caller's tenant: the bare name in the default
        tenant, ``tenant/name`` in any other, so tenants never share a user."""
        if self.tenant == DEFAULT_TENANT:
            return name
        return f"{self.tenant}{TENANT_SEPARATOR}{name}"

    @property
    def limit_key(self) -> str:
        """Names this caller's own rate-limit budget: its key, else role and user id."""
        return f"key:{self.key_id}" if self.key_id else f"{self.role}:{self.user_id(self.subject)}"


@dataclass(frozen=True, slots=True)
class Caller:
    """A request's caller once admitted: who, for which end user (an id in the store), and
    from which client address."""

    principal: Principal
    user: str
    client: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: the secret itself is never kept, only its SHA-256."""

    id: str  # the visible part of the key (``pk_<id>_<secret>``)
    secret_hash: str  # hex SHA-256 of the secret
    role: AccessRole
    subject: str  # the owner: the user it is, or the service it names
    tenant: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: ``token`` is the whole key, shown once and never stored."""

    key: ApiKey
    token: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log: an admin action or a model call. ``details`` is JSON data
    (never message text)."""

    action: str  # e.g. "key.create", "user.delete", "model.call"
    actor: str  # the principal's subject ("cli" for the command line)
    outcome: str = "ok"
    target: str | None = None  # what it acted on: a key id, a user id, a character
    role: str | None = None
    tenant: str | None = None
    key_id: str | None = None
    client: str | None = None  # the client's address
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # set by the log when None
    id: int | None = None  # set by the log


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
    chat: str | None = None  # the platform chat it came from: reminders go there
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    idempotency_key: str | None = None  # a retry with the same key never makes a second turn
    # True when the sender is told the message is stored before the reply (WebSocket ack): the
    # message then stays even if the reply fails. False (HTTP): a failed turn leaves no trace.
    durable_ack: bool = False
    speaker: str | None = None  # in a group: the character asked to answer (force-speak)
    greeting: int = 0  # a new conversation opens with this greeting (0: the first, then alternates)
    # Answer ``conversation_id``'s last user message again (``text``: its new text, for an edit).
    # ``redo_of``: the message the client means (that reply or that user message); if the
    # conversation moved on since, the redo is refused instead of redoing something else.
    redo: Redo | None = None
    redo_of: str | None = None
    # What this turn does differently (an experiment's variant, a replay); one-to-one turns only.
    overrides: Overrides | None = None
    experiment: ExperimentTag | None = None  # set with ``overrides`` when a variant chose them
    # Who is asking, for an experiment's targeting (docs/experiments.md): the caller's access
    # role, the tags it declared, and the variant a tester asked for (honoured only for a
    # role in the experiment's force_roles; ignored otherwise).
    role: str = "user"
    tags: tuple[str, ...] = ()
    forced_variant: str | None = None
