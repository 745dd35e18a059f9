"""A store on a SQLite database file: the file's shared ``SqliteDatabase`` (the composition
root passes it, so every store of the process shares one writer), or, given a path, a
database of its own (tests, command-line tools)."""

from __future__ import annotations

from pathlib import Path

from personae.core.ports import Resource
from personae.errors import StorageError
from personae.storage.sqlite.database import SqliteDatabase


class SqliteResource(Resource):
    def __init__(self, database: SqliteDatabase | Path) -> None:
        self._db = database if isinstance(database, SqliteDatabase) else SqliteDatabase(database)
        self._is_open = False

    async def open(self) -> None:
        if self._is_open:
            raise StorageError(f"{self._db.path}: already open", path=self._db.path)
        # Counted: the shared database opens (and migrates) once, for its first store.
        await self._db.open()
        self._is_open = True

    async def close(self) -> None:
        """Closing twice is harmless: the database counts this store once."""
        if self._is_open:
            self._is_open = False
            await self._db.close()
