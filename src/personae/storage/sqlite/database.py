"""One SQLite database file for the whole process: the one writer (group commit,
``writer.py``) and a small pool of WAL readers (``readers.py``), shared by every store on it.

The composition root opens one ``SqliteDatabase`` per file and hands it to each store
(``SqliteResource``), so the stores' writes are serialised in the process instead of fighting
over the file's lock. Opening is counted: each store opens and closes it as if it were its
own, the first open migrates the schema and the last close closes the connections.

Functions passed to ``write`` run on the writer's thread inside a transaction and may use
``transaction(conn)`` (a savepoint there); functions passed to ``read`` run on a read-only
connection and see the last commit. Driver errors come back as ``StorageError`` naming the
operation, with the driver error chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import sqlean

from personae.errors import StorageError
from personae.storage.sqlite.connection import DEFAULT_SYNCHRONOUS, Connection, Synchronous
from personae.storage.sqlite.migrations import migrate
from personae.storage.sqlite.readers import ReaderPool
from personae.storage.sqlite.writer import GroupCommitWriter

T = TypeVar("T")

#: Read connections per file: the machine this runs on has few cores, and SQLite reads of
#: a chat turn are short.
DEFAULT_READERS = 2


class SqliteDatabase:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
        readers: int = DEFAULT_READERS,
        foreign_keys: bool = True,  # off: its rows refer to conversations kept elsewhere
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise StorageError(
                f"storage.synchronous must be 'normal' or 'full', not {synchronous!r}"
            )
        if readers < 1:
            raise StorageError(f"a database needs at least one reader, not {readers}")
        self.path = path
        self.synchronous: Synchronous = synchronous
        self.foreign_keys = foreign_keys
        self._readers_size = readers
        self._writer: GroupCommitWriter | None = None
        self._readers: ReaderPool | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    @property
    def writer(self) -> GroupCommitWriter | None:
        return self._writer

    async def open(self) -> None:
        """Open (the first time) and migrate; every ``open`` needs its ``close``."""
        async with self._lock:
            if self._users == 0:
                await self._open()
            self._users += 1

    async def _open(self) -> None:
        def start() -> GroupCommitWriter:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return GroupCommitWriter(
                self.path, synchronous=self.synchronous, foreign_keys=self.foreign_keys
            )

        try:
            self._writer = await asyncio.to_thread(start)
        except sqlean.Error as exc:
            raise StorageError(
                f"database error, could not open {self.path}", path=self.path, detail=str(exc)
            ) from exc
        self._readers = ReaderPool(self.path, size=self._readers_size, synchronous=self.synchronous)
        try:
            await self.write("migrate the database schema", migrate)
        except BaseException:
            await self._close()
            raise

    async def close(self) -> None:
        """The last close waits for every queued write and closes; extra closes are harmless."""
        async with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                await self._close()

    async def _close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer, self._readers = None, None
        if readers is not None:
            await asyncio.to_thread(readers.close)
        if writer is not None:
            await asyncio.to_thread(writer.stop)

    async def __aenter__(self) -> SqliteDatabase:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def write(self, what: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in the writer's next group; resolves after its commit."""
        writer = self._writer
        if writer is None:
            raise StorageError(f"cannot {what}: the store is not open", path=self.path)
        return await self._translated(what, writer.submit(fn))

    async def read(self, what: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` on a read-only connection; it must not write."""
        readers = self._readers
        if readers is None:
            raise StorageError(f"cannot {what}: the store is not open", path=self.path)
        return await self._translated(what, readers.run(fn))

    # Code that does not say whether it writes goes to the writer: always correct.
    run = write

    async def _translated(self, what: str, work: Awaitable[T]) -> T:
        try:
            return await work
        except sqlean.Error as exc:
            raise StorageError(
                f"database error, could not {what}", path=self.path, detail=str(exc)
            ) from exc
