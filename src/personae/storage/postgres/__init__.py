"""PostgreSQL storage (psycopg 3 with a shared connection pool, pgvector for memory vectors):
the stores that nodes sharing one database must share (conversations, memory, API keys, the
audit log, users' data and the retention purges of messages and audit rows)."""

from personae.storage.postgres.audit import PostgresAuditLog
from personae.storage.postgres.conversations import PostgresConversationStore
from personae.storage.postgres.database import PostgresDatabase
from personae.storage.postgres.keys import PostgresKeyStore
from personae.storage.postgres.memory import PostgresMemoryStore
from personae.storage.postgres.retention import PostgresAuditRetention, PostgresMessageRetention
from personae.storage.postgres.user_data import PostgresUserData

__all__ = [
    "PostgresAuditLog",
    "PostgresAuditRetention",
    "PostgresConversationStore",
    "PostgresDatabase",
    "PostgresKeyStore",
    "PostgresMemoryStore",
    "PostgresMessageRetention",
    "PostgresUserData",
]
