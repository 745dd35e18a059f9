"""A store that owns one connection to the database file and migrates the schema on open."""

from __future__ import annotations

from pathlib import Path

from personae.core.ports import Resource
from personae.storage.sqlite.connection import SqliteDatabase
from personae.storage.sqlite.migrations import migrate


class SqliteResource(Resource):
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path)

    async def open(self) -> None:
        await self._db.open()
        try:
            # Safe beside other stores on the same file: each migration is applied under the
            # write lock, once.
            await self._db.run("migrate the database schema", migrate)
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()
