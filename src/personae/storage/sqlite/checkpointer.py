"""WAL checkpoints of a database file, off the commit path.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that takes the WAL past 1,000 pages:
that commit, and so every caller in the writer's group, waits while the pages are copied back
into the database file and the file is synced. Measured in process, one turn in about a
hundred waited 5-20 ms for it (docs/benchmarks.md). So the writer turns it off
(``wal_autocheckpoint=0``) and tells this thread after each commit; the thread runs PASSIVE
checkpoints on a connection of its own, at most one per ``interval``. A PASSIVE checkpoint
copies what no reader still needs and waits for nobody: writers append to the WAL and readers
read while it runs, and what it could not copy is copied by a later one.

The WAL then holds about ``interval`` seconds of writes (plus what a long read pins), where
SQLite's own policy kept about 4 MiB. A failed checkpoint loses nothing (the WAL keeps the
pages); it is logged and the next commit asks for another.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import sqlean
import structlog

from personae.storage.sqlite.connection import Connection, Synchronous, connect

log = structlog.get_logger(__name__)

#: Seconds between checkpoints at most: a busy server checkpoints this often, an idle one never.
DEFAULT_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint found: the WAL's frames, and how many of them are now in the file."""

    busy: bool
    wal_frames: int
    copied_frames: int


class Checkpointer:
    """A thread that checkpoints ``path`` when told that something was committed."""

    def __init__(
        self, path: Path, *, synchronous: Synchronous, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.path = path
        self.interval = interval
        self._conn: Connection = connect(path, synchronous=synchronous)
        self._committed = threading.Event()
        self._stopping = threading.Event()
        #: Checkpoints run and the last one's figures, for tests and curiosity.
        self.checkpoints = 0
        self.last: Checkpoint | None = None
        self._thread = threading.Thread(
            target=self._serve, name=f"personae-sqlite-checkpointer {path.name}", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """Something new is in the WAL (called by the writer after each commit; cheap)."""
        self._committed.set()

    def stop(self) -> None:
        """Finish the checkpoint under way, if any, and close; blocks."""
        self._stopping.set()
        self._committed.set()  # wake the thread
        self._thread.join()

    def _serve(self) -> None:
        try:
            while True:
                self._committed.wait()
                if self._stopping.is_set():
                    return
                self._committed.clear()
                self._checkpoint()
                # Commits during the pause are taken by the next checkpoint, together.
                if self._stopping.wait(self.interval):
                    return
        finally:
            self._conn.close()

    def _checkpoint(self) -> None:
        try:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlean.Error as exc:
            log.warning("wal checkpoint failed", path=str(self.path), error=str(exc))
            return
        self.last = Checkpoint(busy=bool(busy), wal_frames=frames, copied_frames=copied)
        self.checkpoints += 1
