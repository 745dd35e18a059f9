"""Re-indexes the knowledge folder as it changes, with ``watchfiles`` (as the characters
watcher does). Runs under the supervisor: a failure (the folder removed) ends the run, and
the supervisor starts it again after a backoff; every start re-syncs the whole folder once
the watch is running, so nothing changed in between is missed."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import structlog
from watchfiles import Change, awatch

from personae.knowledge.indexer import KnowledgeIndexer, SyncReport
from personae.knowledge.readers import is_document

log = structlog.get_logger(__name__)


class KnowledgeWatcher:
    def __init__(
        self,
        indexer: KnowledgeIndexer,
        *,
        debounce_ms: int = 1600,
        step_ms: int = 50,
        idle_ms: int = 500,
        force_polling: bool | None = None,
    ) -> None:
        self.indexer = indexer
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._idle_ms = idle_ms
        self._force_polling = force_polling
        self.syncs = 0  # batches applied (the first full sync included), for tests and logs

    async def run_forever(self) -> None:
        root = self.indexer.root
        if not root.is_dir():
            raise FileNotFoundError(f"the knowledge folder {root} does not exist")
        batches = awatch(
            root,
            watch_filter=_relevant,
            debounce=self._debounce_ms,
            step=self._step_ms,
            rust_timeout=self._idle_ms,
            yield_on_timeout=True,  # the first (empty) batch says the watch is running
            recursive=True,
            force_polling=self._force_polling,
        )
        synced = False
        async with contextlib.aclosing(batches):
            async for changes in batches:
                paths = {Path(name) for _, name in changes}
                if not synced or any(map(_is_folder, paths)):
                    # Start, or a folder came or went: compare everything.
                    self._log(await self.indexer.sync_all(), full=True)
                    synced = True
                elif documents := {path for path in paths if is_document(path)}:
                    self._log(await self.indexer.sync_files(documents), full=False)
                if not root.is_dir():
                    raise FileNotFoundError(f"the knowledge folder {root} was removed")

    def _log(self, report: SyncReport, *, full: bool) -> None:
        self.syncs += 1
        log.info("knowledge synced", full=full, **dataclasses.asdict(report))


def _is_folder(path: Path) -> bool:
    """A folder, or a path gone that had no suffix (most likely a folder)."""
    return path.is_dir() or (not path.suffix and not path.exists())


def _relevant(_change: Change, path: str) -> bool:
    name = Path(path).name
    return not name.startswith(".")  # documents, and folders (a whole folder may go)
