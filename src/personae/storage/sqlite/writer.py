"""The one writer of a database file: a thread that owns the write connection and commits the
writes of concurrent callers together (group commit).

Each write is a plain function of the connection. The thread takes every write waiting in its
queue, runs them one after the other inside one ``BEGIN IMMEDIATE`` transaction, each under its
own savepoint (a write alone in its group needs none: the transaction is its own), and commits
once: one fsync (``synchronous=full``) for the whole group instead of one per write. A write
that raises is rolled back to its savepoint, alone; the others go on. A caller's await
resolves only after the commit, so an acknowledged write is as durable as it was with a
transaction of its own. While a group commits, the next one queues up, so groups grow with the
load and cost nothing when idle (a lone write is a group of one). No commit waits for a WAL
checkpoint: those run on a thread of their own (``checkpointer.py``).

A write whose caller is cancelled still runs, whole or not at all, like any other: a
transaction is never cut in half, and the others in its group never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from personae.storage.sqlite.checkpointer import Checkpointer
from personae.storage.sqlite.connection import (
    Connection,
    Synchronous,
    connect,
    savepoint,
)

T = TypeVar("T")

#: Writes committed together at most; a bound on how long one group holds the write lock.
MAX_GROUP = 256


@dataclass(eq=False, slots=True)
class Write(Generic[T]):
    """One caller's write: its function, and the future its caller awaits."""

    fn: Callable[[Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    outcome: tuple[bool, Any] = field(default=(False, None))


class GroupCommitWriter:
    """The write connection of ``path`` and the thread that alone uses it."""

    def __init__(self, path: Path, *, synchronous: Synchronous, foreign_keys: bool = True) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Write[Any] | None] = queue.SimpleQueue()
        self._conn: Connection = connect(path, synchronous=synchronous, foreign_keys=foreign_keys)
        try:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's, not a commit's
            self.checkpointer = Checkpointer(path, synchronous=synchronous)
        except BaseException:
            self._conn.close()
            raise
        self._thread = threading.Thread(
            target=self._serve, name=f"personae-sqlite-writer {path.name}", daemon=True
        )
        self._thread.start()
        #: Transactions committed and writes in them, for tests and curiosity.
        self.commits = 0
        self.writes = 0

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Write(fn, loop, future))
        return future

    def stop(self) -> None:
        """Run what is queued, then close the connection; blocks, so call it off the loop."""
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while (group := self._next_group()) is not None:
                stop = group[-1] is None
                writes = [w for w in group if w is not None]
                if writes:
                    self._commit(writes)
                    _settle(writes)
                if stop:
                    return
        finally:
            self.checkpointer.stop()
            self._conn.close()  # the last connection to close checkpoints what is left

    def _next_group(self) -> list[Write[Any] | None] | None:
        first = self._queue.get()
        if first is None:
            return None
        group: list[Write[Any] | None] = [first]
        while len(group) < MAX_GROUP:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            group.append(item)
            if item is None:
                break
        return group

    def _commit(self, writes: list[Write[Any]]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:  # the file is locked by another process past busy_timeout
            _fail(writes, exc)
            return
        alone = len(writes) == 1  # a failure can roll back the whole transaction
        for write in writes:
            try:
                with nullcontext() if alone else savepoint(conn):
                    write.outcome = (True, write.fn(conn))
            except BaseException as exc:
                write.outcome = (False, exc)
                if alone and conn.in_transaction:
                    conn.execute("ROLLBACK")  # the write's own transaction: undone whole
                if not conn.in_transaction:
                    # Rolled back above, or abandoned by SQLite (disk full, I/O error):
                    # nothing of this group is stored, so nobody may be told otherwise.
                    _fail(writes, exc)
                    return
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _fail(writes, exc)
            return
        self.commits += 1
        self.writes += len(writes)
        self.checkpointer.committed()


def _fail(writes: list[Write[Any]], exc: BaseException) -> None:
    for write in writes:
        if write.outcome[0] or write.outcome[1] is None:
            write.outcome = (False, exc)


def _settle(writes: list[Write[Any]]) -> None:
    """Hand each outcome to its caller's loop, one wake-up per loop for the whole group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Write[Any]]] = {}
    for write in writes:
        by_loop.setdefault(write.loop, []).append(write)
    for loop, theirs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, theirs)


def _resolve(writes: list[Write[Any]]) -> None:
    for write in writes:
        if write.future.done():  # cancelled while it waited
            continue
        ok, value = write.outcome
        if ok:
            write.future.set_result(value)
        else:
            write.future.set_exception(value)
