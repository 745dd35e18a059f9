"""One SQLite connection driven by one dedicated thread, so the event loop never blocks.

Every call is a plain function run on the worker thread; driver errors come back as
``StorageError`` naming the operation, with the driver error chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlean
import sqlite_vec

from personae.errors import StorageError

T = TypeVar("T")

# sqlean ships no type hints; its connection is a drop-in for sqlite3.Connection.
Connection = Any

# synchronous=FULL: a user message must be on disk before it is acknowledged.
# busy_timeout: other processes on the same file wait for the write lock instead of failing.
_PRAGMAS = ("synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000")


def connect(path: Path) -> Connection:
    """Open ``path`` in autocommit mode (we issue BEGIN/COMMIT ourselves), WAL, and pragmas."""
    conn = sqlean.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlean.Row
        # sqlite-vec (vec0 tables for memory vectors); extension loading is closed again after.
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"{path}: cannot use WAL journal mode (got {mode!r})", path=path)
        for pragma in _PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any error, so all or nothing.

    IMMEDIATE takes the write lock up front: a read-then-write (such as ``last_seq + 1``)
    cannot interleave with another connection's write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (disk full, I/O) make SQLite roll back on its own.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteDatabase:
    """A connection plus the single worker thread that is the only one to touch it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        if self._executor is not None:
            raise StorageError(f"{self.path}: already open", path=self.path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="personae-sqlite")
        self._executor = executor
        try:
            self._conn = await self._submit(executor, f"open {self.path}", self._connect)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=True)
            raise

    def _connect(self) -> Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect(self.path)

    async def run(self, what: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread; ``what`` names it in errors."""
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise StorageError(f"cannot {what}: the store is not open", path=self.path)
        return await self._submit(executor, what, lambda: fn(conn))

    async def _submit(self, executor: ThreadPoolExecutor, what: str, fn: Callable[[], T]) -> T:
        # If the awaiting task is cancelled, the call still runs to the end on the worker
        # thread: a transaction is never cut in half.
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlean.Error as exc:
            raise StorageError(
                f"database error, could not {what}", path=self.path, detail=str(exc)
            ) from exc

    async def close(self) -> None:
        """Close after every queued call has run; closing twice is harmless."""
        conn, executor = self._conn, self._executor
        self._conn, self._executor = None, None
        if executor is None:
            return
        try:
            if conn is not None:
                # Queued behind any pending work, on the thread that owns the connection.
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            executor.shutdown(wait=True)
