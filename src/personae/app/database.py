"""The process's one SQLite database (one writer, a few readers), shared by every store."""

from __future__ import annotations

from personae.settings import Settings
from personae.storage.sqlite.database import SqliteDatabase


def sqlite_database(settings: Settings) -> SqliteDatabase:
    """Not open yet: enter it on the stack *before* its stores, so it closes after them."""
    storage = settings.storage
    return SqliteDatabase(
        settings.database_path, synchronous=storage.synchronous, readers=storage.readers
    )
