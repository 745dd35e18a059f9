"""The PostgreSQL database of a node: one connection pool shared by the conversation and the
memory store (as ``SqliteDatabase`` is shared on SQLite), migrated when it first opens.

Every node opens its own pool on the same database; what keeps them consistent is in the
database (row locks, constraints), not here. Opening is counted like ``SqliteDatabase``: each
store opens and closes it as if it were its own, the first open migrates and fills the pool,
the last close closes it.

Functions passed to ``run`` get a pooled connection inside a transaction (committed when they
return, rolled back when they raise); functions passed to ``read`` get one in autocommit.
Driver and pool errors come back as ``StorageError`` naming the operation, the driver's error
chained as ``__cause__``; a connection that broke (a restarted server) is thrown away by the
pool's check, so the calls after the server is back get fresh ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from personae.errors import ConfigurationError, StorageError, StorageUnavailable
from personae.storage.postgres.migrations import migrate

T = TypeVar("T")
Conn = AsyncConnection[DictRow]

#: Seconds to reach the server when opening: an unreachable host fails fast instead of hanging.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: Seconds a call waits for a pooled connection before giving up (server down, pool exhausted).
DEFAULT_WAIT_TIMEOUT_S = 10.0


class PostgresDatabase:
    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S,
    ) -> None:
        self.where = describe(url)  # validates; names the server without the password
        if not 1 <= min_size <= max_size:
            raise ConfigurationError(
                f"the PostgreSQL pool needs 1 <= min size <= max size, not {min_size}..{max_size}"
            )
        self._url = url
        self._min_size, self._max_size = min_size, max_size
        self._connect_timeout_s = connect_timeout_s
        self._wait_timeout_s = wait_timeout_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    def _connection_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,  # transactions are explicit (``run``)
            "row_factory": dict_row,
            # libpq's own timeout, whole seconds, at least 2 (libpq reads 1 as 2).
            "connect_timeout": max(2, round(self._connect_timeout_s)),
            "options": "-c TimeZone=UTC",  # times come back aware and in UTC
        }

    async def open(self) -> None:
        """Open (the first time): migrate, then fill the pool; every ``open`` needs its
        ``close``."""
        async with self._lock:
            if self._users == 0:
                await self._migrate()
                self._pool = await self._open_pool()
            self._users += 1

    async def _migrate(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout_s + 1):
                conn = await AsyncConnection.connect(self._url, **self._connection_kwargs())
        except (psycopg.Error, TimeoutError) as exc:
            raise StorageError(
                f"could not connect to PostgreSQL at {self.where}: {_reason(exc)}",
                where=self.where,
            ) from exc
        async with conn:
            try:
                await migrate(conn)
            except psycopg.Error as exc:
                raise StorageError(
                    f"database error, could not migrate the schema at {self.where}: {exc}",
                    where=self.where,
                ) from exc

    async def _open_pool(self) -> AsyncConnectionPool[Conn]:
        pool = AsyncConnectionPool(
            self._url,
            connection_class=Conn,
            kwargs=self._connection_kwargs(),
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            configure=register_vector_async,
            # A connection that broke while idle (a restarted server) is replaced, not used.
            check=AsyncConnectionPool.check_connection,
            timeout=self._wait_timeout_s,
            name=f"personae {self.where}",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s + 1)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, PoolTimeout):
                raise StorageError(
                    f"could not connect to PostgreSQL at {self.where}: no connection within "
                    f"{self._connect_timeout_s:g}s",
                    where=self.where,
                ) from exc
            raise
        return pool

    async def close(self) -> None:
        """The last close closes the pool; extra closes are harmless."""
        async with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._pool is not None:
                pool, self._pool = self._pool, None
                await pool.close()

    async def __aenter__(self) -> PostgresDatabase:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(self, what: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """``fn(connection)`` in one transaction: all of its writes or none."""

        async def in_transaction(conn: Conn) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._with_connection(what, in_transaction)

    async def read(self, what: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """``fn(connection)`` in autocommit: each statement sees the last commit."""
        return await self._with_connection(what, fn)

    async def _with_connection(self, what: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise StorageError(f"cannot {what}: the store is not open", where=self.where)
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with pool.connection() as conn:
                if task is not None and task.cancelling() > cancels:
                    # The pool waits with asyncio.wait_for, which on Python 3.11 drops a
                    # cancel that arrives with the connection (CPython gh-86296): the
                    # caller would carry on, and a shutdown waiting for it would hang.
                    raise asyncio.CancelledError
                return await fn(conn)
        except PoolTimeout as exc:
            raise StorageUnavailable(
                f"could not {what}: no connection to PostgreSQL at {self.where} within "
                f"{self._wait_timeout_s:g}s (is the server up?)",
                where=self.where,
            ) from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(
                f"database error, could not {what}: the connection to PostgreSQL at "
                f"{self.where} failed ({_reason(exc)})",
                where=self.where,
            ) from exc
        except psycopg.Error as exc:
            raise StorageError(
                f"database error, could not {what}", where=self.where, detail=str(exc)
            ) from exc


def describe(url: str) -> str:
    """``host:port/dbname`` of a connection URL, never its password; ``ConfigurationError``
    for something that is not a connection string."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"storage.postgres_url is not a PostgreSQL URL: {exc}") from exc
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
