"""The process's databases: one SQLite file (one writer, a few readers) shared by every store,
and, with ``storage: postgres``, one PostgreSQL pool shared by the stores every node must
share (``Stores``; docs/postgres.md)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.core.memory.items import EmbeddingSpace
from personae.core.ports import AuditLog, ConversationStore, KeyStore, Purgeable, UserData
from personae.errors import ConfigurationError
from personae.settings import Settings
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.conversations import Remember, SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.keys import SqliteKeyStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.storage.sqlite.retention import SqliteAuditRetention, SqliteMessageRetention
from personae.storage.sqlite.user_data import SqliteUserData

if TYPE_CHECKING:
    from personae.storage.postgres import (
        PostgresDatabase,
        PostgresMemoryStore,
    )


def sqlite_database(settings: Settings) -> SqliteDatabase:
    """Not open yet: enter it on the stack *before* its stores, so it closes after them."""
    storage = settings.storage
    return SqliteDatabase(
        settings.database_path,
        synchronous=storage.synchronous,
        readers=storage.readers,
        # With postgres, reminders, turn records and experiment turns here refer to
        # conversations and messages in PostgreSQL: SQLite cannot check those references.
        foreign_keys=storage.backend == "sqlite",
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
    """What every node must share, on the configured backend (``storage.backend``):
    conversations, long-term memory, API keys, the audit log, users' data and the retention
    purges of messages and audit rows. The node's SQLite database keeps the other stores
    (reminders, channels, experiments, turn records) either way."""

    conversations: ConversationStore  # open
    # The memory store in an embedding space, not open yet (the space is the embedder's,
    # known only once it is open; None: full text only).
    memory: Callable[[EmbeddingSpace | None], FactMemoryStore]
    keys: KeyStore  # open, like the rest
    audit: AuditLog
    users: UserData  # a user's conversations, for export and erasure
    message_retention: Purgeable
    audit_retention: Purgeable


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
        from personae.storage import postgres

        enter = stack.enter_async_context
        return Stores(
            conversations=await enter(postgres.PostgresConversationStore(pg, remember=remember)),
            memory=lambda space: postgres.PostgresMemoryStore(pg, space=space),
            keys=await enter(postgres.PostgresKeyStore(pg)),
            audit=await enter(postgres.PostgresAuditLog(pg)),
            users=await enter(postgres.PostgresUserData(pg)),
            message_retention=await enter(postgres.PostgresMessageRetention(pg)),
            audit_retention=await enter(postgres.PostgresAuditRetention(pg)),
        )
    enter = stack.enter_async_context
    return Stores(
        conversations=await enter(SqliteConversationStore(sqlite, remember=remember)),
        memory=lambda space: SqliteMemoryStore(sqlite, space=space),
        keys=await enter(SqliteKeyStore(sqlite)),
        audit=await enter(SqliteAuditLog(sqlite)),
        users=await enter(SqliteUserData(sqlite)),
        message_retention=await enter(SqliteMessageRetention(sqlite)),
        audit_retention=await enter(SqliteAuditRetention(sqlite)),
    )
