"""A store on PostgreSQL: the node's shared ``PostgresDatabase`` (the composition root passes
it, so both stores share one pool), or, given a URL, a database of its own (tests, tools)."""

from __future__ import annotations

from personae.core.ports import Resource
from personae.errors import StorageError
from personae.storage.postgres.database import PostgresDatabase


class PostgresResource(Resource):
    def __init__(self, database: PostgresDatabase | str) -> None:
        self._db = (
            database if isinstance(database, PostgresDatabase) else PostgresDatabase(database)
        )
        self._is_open = False

    async def open(self) -> None:
        if self._is_open:
            raise StorageError(f"{self._db.where}: already open", where=self._db.where)
        # Counted: the shared database opens (and migrates) once, for its first store.
        await self._db.open()
        self._is_open = True

    async def close(self) -> None:
        """Closing twice is harmless: the database counts this store once."""
        if self._is_open:
            self._is_open = False
            await self._db.close()
