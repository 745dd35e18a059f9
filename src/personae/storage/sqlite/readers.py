"""Read-only connections to a database file, each owned by one thread of a small pool.

In WAL mode a reader sees the last commit and never waits for the writer, nor the writer for
it: reads do not queue behind writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from personae.storage.sqlite.connection import Connection, Synchronous, connect

T = TypeVar("T")


class ReaderPool:
    def __init__(self, path: Path, *, size: int, synchronous: Synchronous) -> None:
        self.path = path
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(
            max_workers=size, thread_name_prefix=f"personae-sqlite-reader {path.name}"
        )
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[Connection], T]) -> T:
        # A cancelled caller leaves the read to finish on its thread; nothing is written.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    def _connection(self) -> Connection:
        """This thread's connection, opened on its first read."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self._synchronous, read_only=True)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Wait for the reads under way, then close every connection; blocks."""
        self._executor.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
