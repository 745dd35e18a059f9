"""The process's databases: one SQLite file (one writer, a few readers) shared by every store,
and, with ``storage: postgres``, one PostgreSQL pool shared by the conversation and memory
stores of every node (docs/postgres.md)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.core.memory.items import EmbeddingSpace
from personae.core.ports import ConversationStore
from personae.errors import ConfigurationError
from personae.settings import Settings
from personae.storage.sqlite.conversations import Remember, SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.memory import SqliteMemoryStore

if TYPE_CHECKING:
    from personae.storage.postgres import (
        PostgresDatabase,
        PostgresMemoryStore,
    )


def sqlite_database(settings: Settings) -> SqliteDatabase:
    """Not open yet: enter it on the stack *before* its stores, so it closes after them."""
    storage = settings.storage
    return SqliteDatabase(
        settings.database_path, synchronous=storage.synchronous, readers=storage.readers
    )


def open_postgres(settings: Settings) -> PostgresDatabase:
    """The node's PostgreSQL pool, not open yet: enter it on the stack *before* its stores,
    so it closes after them. Opening migrates the schema (one node at a time) and fails with
    ``StorageError`` when the server cannot be reached within its connect timeout."""
    # Imported here: psycopg costs a tenth of a second at start-up that SQLite nodes skip.
    from personae.storage.postgres import PostgresDatabase

    storage = settings.storage
    if storage.postgres_url is None:
        raise ConfigurationError("storage: postgres needs storage.postgres_url")
    return PostgresDatabase(
        storage.postgres_url.get_secret_value(),
        min_size=storage.postgres_pool_min,
        max_size=storage.postgres_pool_max,
        wait_timeout_s=storage.postgres_wait_timeout_s,
    )


if TYPE_CHECKING:
    # A MemoryStore that also lists a user's facts (core.memory.profile.FactSource).
    FactMemoryStore = SqliteMemoryStore | PostgresMemoryStore


@dataclass(frozen=True, slots=True)
class Stores:
    """Conversations and long-term memory on the configured backend (``storage.backend``);
    the node's SQLite database keeps the other stores either way."""

    conversations: ConversationStore  # open
    # The memory store in an embedding space, not open yet (the space is the embedder's,
    # known only once it is open; None: full text only).
    memory: Callable[[EmbeddingSpace | None], FactMemoryStore]


async def open_stores(
    settings: Settings,
    stack: AsyncExitStack,
    sqlite: SqliteDatabase,
    *,
    remember: Remember | None = None,
) -> Stores:
    """Entered on ``stack`` (after ``sqlite``, so they close before it)."""
    if settings.storage.backend == "postgres":
        pg = await stack.enter_async_context(open_postgres(settings))
        from personae.storage.postgres import PostgresConversationStore, PostgresMemoryStore

        conversations: ConversationStore = await stack.enter_async_context(
            PostgresConversationStore(pg, remember=remember)
        )
        return Stores(conversations, lambda space: PostgresMemoryStore(pg, space=space))
    conversations = await stack.enter_async_context(
        SqliteConversationStore(sqlite, remember=remember)
    )
    return Stores(conversations, lambda space: SqliteMemoryStore(sqlite, space=space))
