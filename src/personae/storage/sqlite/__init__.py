"""SQLite storage (WAL, via sqlean so extensions such as sqlite-vec can be loaded)."""

from personae.storage.sqlite.conversations import SqliteConversationStore

__all__ = ["SqliteConversationStore"]
