"""PostgreSQL storage (psycopg 3 with a shared connection pool, pgvector for memory vectors):
the conversation and memory stores of nodes that share one database."""

from personae.storage.postgres.conversations import PostgresConversationStore
from personae.storage.postgres.database import PostgresDatabase
from personae.storage.postgres.memory import PostgresMemoryStore

__all__ = ["PostgresConversationStore", "PostgresDatabase", "PostgresMemoryStore"]
