"""Ports: the small abstract classes the core depends on. Adapters implement them.

Every implementation of a port passes the same contract suite under ``tests/contracts``.
Everything that holds a resource is an async context manager (``open`` on enter, ``close``
on exit).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from personae.core.events import ConversationEvent
from personae.core.types import (
    ChatRequest,
    Conversation,
    EventRecord,
    InboundMessage,
    Message,
    ModelChunk,
    NewMessage,
    OpenedTurn,
    Principal,
    User,
)


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
    ) -> OpenedTurn:
        """Store a user message, durably, in one transaction.

        Creates the user if unknown. With ``conversation_id`` the conversation must exist and
        belong to that user and character (else ``ConversationNotFound``); with
        ``new_conversation`` a new one is started; with neither, the user's most recently
        active conversation with the character is used, or a new one if there is none. A new
        conversation starts with ``greeting`` as an assistant message when given. Giving both
        ``conversation_id`` and ``new_conversation`` is ``InvalidInput``.

        With an ``idempotency_key`` the user already used, nothing is written: the result is
        the message stored then, with ``duplicate=True``.
        """

    @abc.abstractmethod
    async def discard_turn(self, turn: OpenedTurn) -> None:
        """Undo ``open_turn``: delete its message, and the conversation and user if that turn
        created them. Used when a turn fails before producing anything."""

    @abc.abstractmethod
    async def append_message(self, conversation_id: str, message: NewMessage) -> Message:
        """Store a message at the next ``seq``. Raises ``ConversationNotFound``."""

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
        """The last ``limit`` messages, oldest first."""

    @abc.abstractmethod
    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Message]:
        """Messages with ``seq > after_seq``, oldest first."""


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """A remembered piece of text in a (user, character) partition (memory issue)."""

    id: str
    partition: str
    text: str
    kind: str
    importance: float
    created_at: datetime
    source_message_ids: tuple[str, ...] = ()
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class MemoryHit:
    item: MemoryItem
    score: float


class MemoryStore(Resource, abc.ABC):
    """Long-term memory: items with full-text and vector search, scoped by partition."""

    @abc.abstractmethod
    async def add(self, items: Sequence[MemoryItem]) -> None: ...

    @abc.abstractmethod
    async def search(
        self,
        partition: str,
        *,
        text: str,
        vector: Sequence[float] | None = None,
        limit: int = 5,
    ) -> list[MemoryHit]: ...

    @abc.abstractmethod
    async def delete(self, partition: str, item_ids: Sequence[str] | None = None) -> int:
        """Delete the given items, or the whole partition; returns how many went."""


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


class RateLimiter(abc.ABC):
    """Admits or refuses a cost against a key's budget (operations issue)."""

    @abc.abstractmethod
    async def hit(self, key: str, cost: int = 1) -> float | None:
        """Take ``cost`` from ``key``'s budget: ``None`` if admitted, else seconds to wait."""


class Channel(Resource, abc.ABC):
    """A chat platform adapter: platform updates in, turn events out (channels issue)."""

    name: str

    @abc.abstractmethod
    def updates(self) -> AsyncIterator[InboundMessage]: ...

    @abc.abstractmethod
    async def deliver(self, inbound: InboundMessage, reply: Message) -> None: ...


class Authenticator(abc.ABC):
    """Turns a presented credential (or none) into a ``Principal``; raises
    ``NotAuthenticated`` when it cannot (operations issue brings keys with roles)."""

    @abc.abstractmethod
    async def authenticate(self, credential: str | None) -> Principal: ...
