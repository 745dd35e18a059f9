"""Opening a SQLite connection, and the transaction helper every store's SQL runs inside.

``SqliteDatabase`` (``database.py``) owns the connections of a file; this module only opens
one and knows the pragmas.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import sqlean
import sqlite_vec

from personae.errors import StorageError

# sqlean ships no type hints; its connection is a drop-in for sqlite3.Connection.
Connection = Any

#: ``synchronous`` in WAL mode (docs/operations.md, "Durability"): ``normal`` survives a crash
#: of the process, ``full`` also a loss of power.
Synchronous = Literal["normal", "full"]
DEFAULT_SYNCHRONOUS: Synchronous = "normal"  # the same as settings.storage.synchronous

# foreign_keys: the schema's cascades. busy_timeout: another *process* on the same file waits
# for the write lock instead of failing (within a process one writer serialises the writes).
# cache_size and mmap_size: a memory KNN reads every vector of a partition (15 MiB for 10k
# MiniLM vectors); with SQLite's default 2 MiB cache each search would go back to the OS.
_PRAGMAS = (
    "busy_timeout=5000",
    f"cache_size=-{64 * 1024}",
    f"mmap_size={256 * 2**20}",
)

# One name for every savepoint: RELEASE and ROLLBACK TO act on the most recent savepoint of
# that name, and ours nest strictly. A name per savepoint (a counter) made each statement new
# SQL text, which pushed the stores' prepared statements out of the connection's statement
# cache: re-preparing them doubled the CPU of a turn's writes (a user message's 247 -> 143 us).
_SAVEPOINT = "personae"


def connect(
    path: Path,
    *,
    synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
    read_only: bool = False,
    foreign_keys: bool = True,
) -> Connection:
    """Open ``path`` in autocommit mode (we issue BEGIN/COMMIT ourselves), WAL, and pragmas.

    ``read_only`` connections refuse writes (``query_only``): a read sent to a reader by
    mistake fails loudly instead of bypassing the writer. ``foreign_keys`` off: the
    conversations that rows here refer to live in another database (storage: postgres).
    """
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
        keys = "ON" if foreign_keys else "OFF"
        for pragma in (f"synchronous={synchronous.upper()}", f"foreign_keys={keys}", *_PRAGMAS):
            conn.execute(f"PRAGMA {pragma}")
        if read_only:
            conn.execute("PRAGMA query_only=ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """All or nothing: ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on any error.

    Inside an open transaction (the writer's group commit, ``writer.py``) it is a savepoint
    instead: an error undoes this block's work only, and the commit is the writer's.
    IMMEDIATE takes the write lock up front: a read-then-write (such as ``last_seq + 1``)
    cannot interleave with another process's write.
    """
    if conn.in_transaction:
        with savepoint(conn):
            yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (disk full, I/O) make SQLite roll back on its own.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def savepoint(conn: Connection) -> Iterator[Connection]:
    """A nested unit of work inside the open transaction: released, or rolled back alone."""
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # else SQLite has abandoned the whole transaction
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")
