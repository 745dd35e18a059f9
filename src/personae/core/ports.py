"""Ports: the small abstract classes the core depends on. Adapters implement them.

Every implementation of a port passes the same contract suite under ``tests/contracts``.
Everything that holds a resource is an async context manager (``open`` on enter, ``close``
on exit).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from personae.core.events import ConversationEvent
from personae.core.memory.items import (
    EmbeddingSpace,
    MemoryHit,
    MemoryItem,
    NewMemory,
    Partition,
)
from personae.core.memory.recall import DEFAULT_WEIGHTS, RecallWeights
from personae.core.types import (
    AccessRole,
    ApiKey,
    AuditEntry,
    Caller,
    ChatRequest,
    Conversation,
    EventRecord,
    Group,
    IssuedKey,
    Message,
    ModelChunk,
    NewMessage,
    OpenedTurn,
    Principal,
    User,
)

if TYPE_CHECKING:
    from personae.core.channels import Receive


class Resource:
    """Async context manager over ``open``/``close``; both default to doing nothing."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ChatModel(Resource, abc.ABC):
    """A language model that continues a chat, token by token."""

    #: Names the backend in errors, metrics and stored messages.
    name: str = "model"
    #: Reached over the network (any HTTP backend, loopback included): prompts are PII-redacted.
    remote: bool = True
    #: Understands ``ChatRequest.tools`` and answers with tool calls (OpenAI ``tools``); tools
    #: are offered only to models that say so, and a tool loop needs ``Role.TOOL`` messages.
    supports_tools: bool = False

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        """Yield chunks of the reply; the last one carries ``finish_reason`` and ``usage``.

        An async generator, so a consumer that stops early can ``aclose()`` it and the backend
        stops generating.

        Raises ``BackendError`` subclasses; never a transport library's own exception.
        """

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` costs in this model's prompt. Backends with a tokenizer override this;
        the default is a conservative estimate of four characters per token."""
        return max(1, -(-len(text) // 4)) if text else 0

    @property
    def context_window(self) -> int | None:
        """The model's context length in tokens, where the backend knows it."""
        return None


class Embedder(Resource, abc.ABC):
    """Turns texts into vectors of a fixed dimension (memory issue)."""

    model_name: str
    dimension: int

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class ConversationStore(Resource, abc.ABC):
    """Users, conversations and their messages, each message with a per-conversation ``seq``.

    Writes are atomic: a method either stores everything it was asked to or nothing.
    """

    @abc.abstractmethod
    async def open_turn(
        self,
        *,
        external_user_id: str,
        character_id: str,
        text: str,
        conversation_id: str | None = None,
        new_conversation: bool = False,
        greeting: str | None = None,
        idempotency_key: str | None = None,
        speaker: str | None = None,
        group: bool = False,
    ) -> OpenedTurn:
        """Store a user message, durably, in one transaction.

        Creates the user if unknown. With ``conversation_id`` the conversation must exist and
        belong to that user (or, for a group, count it among its participants) and character
        (else ``ConversationNotFound``), and be a group's exactly when ``group`` is set (a
        group's conversation is never picked for a one-to-one turn); with
        ``new_conversation`` a new one is started; with neither, the user's most recently
        active conversation with the character is used, or a new one if there is none. A new
        conversation starts with ``greeting`` as an assistant message when given. Giving both
        ``conversation_id`` and ``new_conversation`` is ``InvalidInput``.

        With an ``idempotency_key`` the user already used, nothing is written: the result is
        the message stored then, with ``duplicate=True``.
        """

    @abc.abstractmethod
    async def create_group(
        self,
        *,
        owner: str,
        characters: Sequence[str],
        participants: Sequence[str] = (),
        greetings: Sequence[tuple[str, str]] = (),
        seed: str | None = None,
    ) -> Conversation:
        """Start a group conversation of ``owner`` (an external user id) with ``characters``
        (at least two, in order) and other users (``participants``, created if unknown);
        ``greetings`` are (character id, text) replies stored first. ``seed`` drives who
        speaks (None: the conversation's id)."""

    @abc.abstractmethod
    async def get_group(self, conversation_id: str) -> Group | None:
        """The conversation's members and participants; None for a one-to-one chat."""

    @abc.abstractmethod
    async def set_member_muted(self, conversation_id: str, character_id: str, muted: bool) -> None:
        """Mute or unmute a member. Raises ``ConversationNotFound`` if it is not one."""

    @abc.abstractmethod
    async def discard_turn(self, turn: OpenedTurn) -> None:
        """Undo ``open_turn``: delete its message, and the conversation and user if that turn
        created them. Used when a turn fails before producing anything."""

    @abc.abstractmethod
    async def reopen_turn(
        self,
        conversation_id: str,
        *,
        external_user_id: str,
        character_id: str,
        text: str | None = None,
        expected: str | None = None,
        idempotency_key: str | None = None,
    ) -> OpenedTurn:
        """Open a redo of the conversation's last visible user message (``reopened``): with
        ``text`` (an edit) its text is replaced and the replies after it are hidden; without
        (a regenerate) ``swipe_of`` names the alternatives of the reply after it, if any.
        ``expected``: the message the caller means (that user message, or for a regenerate
        its reply); anything else is ``Conflict``. A seen ``idempotency_key`` gives the
        ``duplicate`` turn. Raises ``ConversationNotFound`` (not this user's one-to-one
        conversation with that character) and ``InvalidInput`` (no user message yet)."""

    @abc.abstractmethod
    async def choose_swipe(self, conversation_id: str, message_id: str) -> Message:
        """Show ``message`` instead of the other alternatives of its reply (which are hidden).
        Only the latest reply's alternatives can be chosen (``Conflict`` otherwise); raises
        ``NotFound`` for a message that is not one of a reply's alternatives in it."""

    @abc.abstractmethod
    async def append_message(self, conversation_id: str, message: NewMessage) -> Message:
        """Store a message at the next ``seq``; one with ``swipe_of`` hides the other
        alternatives of that reply in the same transaction. Raises ``ConversationNotFound``."""

    @abc.abstractmethod
    async def append_events(self, conversation_id: str, records: Sequence[EventRecord]) -> None:
        """Store events in order. The first must follow the conversation's ``last_event_seq``
        and each the one before it, else ``Conflict`` (someone else wrote events meanwhile).
        Raises ``ConversationNotFound``."""

    @abc.abstractmethod
    async def list_events(
        self, conversation_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Stored records holding events with ``seq > after_seq``, in order."""

    @abc.abstractmethod
    async def get_user(self, external_user_id: str) -> User | None: ...

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    @abc.abstractmethod
    async def list_conversations(
        self, user_id: str, *, character_id: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Most recently active first."""

    @abc.abstractmethod
    async def recent_messages(self, conversation_id: str, *, limit: int) -> list[Message]:
        """The last ``limit`` visible messages (the conversation's history), oldest first."""

    @abc.abstractmethod
    async def list_messages(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        limit: int = 100,
        alternatives: bool = False,
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, oldest first; hidden ones too with
        ``alternatives`` (a reply's swipes not chosen, replies to an edited message)."""

    @abc.abstractmethod
    async def get_state(self, conversation_id: str, key: str) -> VersionedState | None:
        """The conversation's state under ``key`` (e.g. a character's behaviour), or None."""

    @abc.abstractmethod
    async def put_state(
        self,
        conversation_id: str,
        key: str,
        value: Mapping[str, Any],
        expected_version: int | None,
    ) -> VersionedState:
        """Replace the state under ``key`` if its version is still ``expected_version`` (None:
        there is no state yet); the new version is one more. Raises ``StateConflict`` when the
        version moved (re-read and try again), ``ConversationNotFound``, ``InvalidInput`` for a
        value that is not JSON data."""


@dataclass(frozen=True, slots=True)
class VersionedState:
    """A conversation's state under one key; ``version`` counts its writes, from 1."""

    conversation_id: str
    key: str
    version: int
    value: Mapping[str, Any]


class MemoryStore(Resource, abc.ABC):
    """Long-term memory: items with full-text and vector search, scoped by partition.

    A store has one embedding space (the embedder's model and dimension, or None when there
    is no embedder): vectors it takes and searches are in that space, and an item without a
    vector in it is pending until ``set_embeddings`` gives it one. Pending items are still
    found by full text. See docs/memory.md.
    """

    space: EmbeddingSpace | None

    @abc.abstractmethod
    async def add(self, items: Sequence[NewMemory]) -> list[MemoryItem]:
        """Store ``items`` in one transaction, all or nothing; ``InvalidInput`` for a vector
        outside the store's space."""

    @abc.abstractmethod
    async def search(
        self,
        partitions: Sequence[Partition],
        *,
        text: str,
        vector: Sequence[float] | None = None,
        limit: int = 5,
        now: datetime,
        exclude_texts: Sequence[str] = (),
        weights: RecallWeights = DEFAULT_WEIGHTS,
    ) -> list[MemoryHit]:
        """The best ``limit`` items of ``partitions`` for a query: its full-text ranking and,
        with ``vector``, its vector ranking, fused (``core.memory.recall.fuse``)."""

    @abc.abstractmethod
    async def get(self, item_ids: Sequence[str]) -> list[MemoryItem]:
        """The items that exist among ``item_ids``, in that order."""

    @abc.abstractmethod
    async def list_items(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        """The partition's items, newest first."""

    @abc.abstractmethod
    async def pending_embeddings(self, limit: int = 100) -> list[MemoryItem]:
        """Items without a vector in the store's space (new, or embedded by another model),
        oldest first; empty when the store has no space."""

    @abc.abstractmethod
    async def set_embeddings(self, vectors: Mapping[str, Sequence[float]]) -> int:
        """Give items (by id) their vector in the store's space, replacing any older one;
        ids that no longer exist are skipped. Returns how many items were updated."""

    @abc.abstractmethod
    async def delete(self, partition: Partition, item_ids: Sequence[str] | None = None) -> int:
        """Delete the given items of the partition, or the whole partition; returns how many
        went."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str) -> int:
        """Delete every item of the user, in every partition."""

    @abc.abstractmethod
    async def purge_before(self, moment: datetime) -> int:
        """Delete private items created before ``moment`` (retention; knowledge stays)."""


class ConversationLock(abc.ABC):
    """Serialises turns per conversation: holders of the same key run one at a time, in
    arrival order."""

    @abc.abstractmethod
    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


class EventBus(Resource, abc.ABC):
    """Fans conversation events out to every subscriber, in this process or (Redis) others.

    The bus only carries live events; replay after a reconnect comes from the store's event log
    and the in-flight turn's buffer (see ``core.hub``).
    """

    @abc.abstractmethod
    async def publish(self, event: ConversationEvent) -> None: ...

    @abc.abstractmethod
    def subscribe(
        self, conversation_id: str
    ) -> AbstractAsyncContextManager[AsyncIterator[ConversationEvent]]:
        """Subscribed on enter, so nothing published after entering is missed; the iterator
        yields events in publication order until the context exits."""

    async def recent(self, conversation_id: str, *, after_seq: int) -> list[ConversationEvent]:
        """The conversation's events after ``after_seq`` that the bus still holds, oldest
        first: how a device that resumes on another node gets the deltas of a reply running
        there, which are stored only when the reply ends. In one process the hub's own buffer
        holds them, so the default holds nothing."""
        return []


@dataclass(frozen=True, slots=True)
class InflightTurn:
    """A turn between its acknowledgement and its end, and the node that runs it."""

    key: str  # the turn lock's key: one turn per key at a time
    conversation_id: str
    reply_to: str  # the acknowledged user message
    ack_seq: int  # the seq of its message.ack: what the turn emitted comes after it
    node: str


class InflightTurns(abc.ABC):
    """Which node runs which acknowledged turn, so that the turns of a node that died can be
    ended by another (with an error event) instead of staying open for ever."""

    @abc.abstractmethod
    async def begin(self, turn: InflightTurn) -> None: ...

    @abc.abstractmethod
    async def end(self, key: str) -> None: ...

    @abc.abstractmethod
    async def get(self, key: str) -> InflightTurn | None: ...

    @abc.abstractmethod
    async def orphans(self) -> list[InflightTurn]:
        """Turns whose node has stopped saying it is alive (for longer than the visibility
        timeout). Nothing in one process: a process that dies takes its turns with it."""


class RateLimiter(abc.ABC):
    """Admits or refuses a cost against a key's budget; one instance is one rate (say, 60
    per minute) over many keys."""

    @abc.abstractmethod
    async def hit(self, key: str, cost: int = 1) -> float | None:
        """Take ``cost`` from ``key``'s budget: ``None`` if admitted, else seconds to wait.
        A ``cost`` of 0 only checks that the budget is not spent."""

    @abc.abstractmethod
    async def spend(self, key: str, cost: int) -> None:
        """Take ``cost``, or all that is left: for usage that already happened (the tokens
        of a finished reply), which cannot be refused, only make the next ``hit`` wait."""


class Purgeable(Protocol):
    """Records that retention purges by age (``core/retention.py``): the memory store, the
    stored messages, the audit log."""

    async def purge_before(self, moment: datetime) -> int:
        """Delete the records created before ``moment`` (timezone-aware); how many went."""
        ...


class Channel(abc.ABC):
    """A chat platform adapter (docs/channels.md): platform messages in, platform messages
    out. ``personae.channels`` turns inbound messages into turns and a turn's events into
    ``send``/``edit`` calls; the adapter only speaks the platform's API.

    Failures are ``personae.channels.errors.PlatformError``: ``PlatformRateLimited`` (with
    ``retry_after``), ``PlatformUnavailable`` (down, 5xx, disconnected: try again later),
    ``PlatformRejected`` (the request itself was refused: do not repeat it).
    """

    name: str  # the configured name (several bots of one kind have different names)
    max_chars: int = 4096  # longest text one platform message may hold
    edits: bool = False  # a sent message can be edited, so replies stream by edits
    min_edit_interval_s: float = 1.0  # the platform's edit rate limit, per message

    async def start(self) -> None:
        """Build clients; no network traffic is required yet."""
        return

    async def stop(self) -> None:
        """Close clients; called once, after ``listen`` has ended."""
        return

    @abc.abstractmethod
    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        """Connect, call ``connected()``, then hand every inbound message to ``receive``
        until cancelled. Raises ``PlatformError`` when the connection is lost; the runner
        reconnects with backoff. Push-based channels (webhooks) just wait."""

    @abc.abstractmethod
    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        """Post ``text`` (at most ``max_chars``) to ``chat``; returns the platform message id."""

    async def edit(self, chat: str, message_id: str, text: str) -> None:
        """Replace a sent message's text (only when ``edits``)."""
        raise NotImplementedError(f"{self.name} cannot edit messages")

    async def typing(self, chat: str) -> None:
        """Show that a reply is being written, where the platform can."""
        return


class Authenticator(abc.ABC):
    """Turns a presented credential (or none) into a ``Principal``; raises
    ``NotAuthenticated`` when it cannot (operations issue brings keys with roles)."""

    @abc.abstractmethod
    async def authenticate(self, credential: str | None) -> Principal: ...


class KeyStore(Resource, abc.ABC):
    """Stored API keys (hashed): what ``ApiKeys`` and the authenticator read and write."""

    @abc.abstractmethod
    async def add(self, key: ApiKey) -> None:
        """Store a new key; ``Conflict`` if its id is taken."""

    @abc.abstractmethod
    async def get(self, key_id: str) -> ApiKey | None: ...

    @abc.abstractmethod
    async def all_keys(self) -> list[ApiKey]:
        """Every key, revoked and expired ones included, oldest first."""

    @abc.abstractmethod
    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked (a second revoke keeps the first time); None if unknown."""

    @abc.abstractmethod
    async def any_created(self) -> bool:
        """Whether a key was ever created (revoked ones count: revoking every key must not
        open the server)."""


class ApiKeys(abc.ABC):
    """Issuing and revoking API keys, for the admin API and the CLI."""

    @abc.abstractmethod
    async def issue(
        self,
        *,
        role: AccessRole,
        subject: str,
        tenant: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        """A new key; its secret exists only in the returned ``token``. ``InvalidInput`` for
        a subject or tenant that is empty or holds the tenant separator."""

    @abc.abstractmethod
    async def all_keys(self) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke at once (this process stops accepting it immediately); ``NotFound``."""


class AuditLog(Resource, abc.ABC):
    """Who did what, when: admin actions and model calls, kept in the database."""

    @abc.abstractmethod
    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Store entries in one transaction; each ``at`` left None becomes now."""

    @abc.abstractmethod
    async def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Matching entries, oldest first, at most ``limit``."""


class UserData(Resource, abc.ABC):
    """A user's data across the conversation store, for export and erasure."""

    @abc.abstractmethod
    async def export_user(self, external_user_id: str) -> dict[str, Any] | None:
        """Everything stored about the user (conversations, messages, events) as JSON data;
        None if unknown."""

    @abc.abstractmethod
    async def erase_user(self, external_user_id: str) -> dict[str, int]:
        """Delete the user with every conversation, message, event and state; returns how
        many rows of each went (all zero for an unknown user)."""


class RequestGate(abc.ABC):
    """Admits an authenticated caller's request: rate limits by role, per key and per user.
    The caller is also remembered for the rest of the calling task, so the audit of a model
    call that the request starts knows who made it."""

    @abc.abstractmethod
    async def admit(self, caller: Caller) -> None:
        """Count one request; ``RateLimited`` (with ``retry_after``) when a budget is spent."""
