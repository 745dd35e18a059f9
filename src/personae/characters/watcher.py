"""Hot reload: a background task that watches the characters folder (and the lorebooks folder,
when there is one) and applies each change.

``CharacterWatcher`` is an async context manager that owns one task. The task watches the
folder with ``watchfiles.awatch`` (a batch is yielded ``step_ms`` after the last change, and at
the latest ``debounce_ms`` after the first: an editor's save is one batch), reads the changed
files in a thread and applies them to the catalog on the event loop (``CharacterFolder``).

It never takes the server down: a failure (the folder missing or removed, a bug in applying a
change) is logged, and after ``retry_s`` the watch starts again. Every (re)start rescans the
whole folder once the watch is running, so a change made while nobody was watching (between
the start-up load and the first watch, or during a failure) is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog
from watchfiles import Change, awatch

from personae.characters.loader import is_character_file
from personae.characters.lorebooks import is_lorebook_file
from personae.characters.reload import CharacterFolder, FileRead

log = structlog.get_logger(__name__)

MAX_RETRY_S = 30.0


class CharacterWatcher:
    def __init__(
        self,
        folder: CharacterFolder,
        *,
        debounce_ms: int = 1600,
        step_ms: int = 50,
        idle_ms: int = 500,
        retry_s: float = 1.0,
        force_polling: bool | None = None,
    ) -> None:
        self.folder = folder
        self._debounce_ms = debounce_ms
        self._step_ms = step_ms
        self._idle_ms = idle_ms  # how often the watch thread wakes up when nothing changes
        self._retry_s = retry_s
        self._force_polling = force_polling
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches applied since start (rescans included), for tests and logs
        self.failures = 0
        self._failing = 0  # failures since the last batch applied: the retry delay doubles

    async def __aenter__(self) -> Self:
        if self._task is not None or self._stop.is_set():
            raise RuntimeError("a watcher runs once: this one is running or closed")
        self._task = asyncio.create_task(self._run(), name="character-watcher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(self) -> None:
        """Watch in the caller's task until cancelled (for a supervisor, which restarts a
        crashed watcher with a new one); like ``async with``, a watcher runs once."""
        if self._task is not None or self._stop.is_set():
            raise RuntimeError("a watcher runs once: this one is running or closed")
        try:
            await self._run()
        finally:
            self._stop.set()  # the watch thread ends too

    async def close(self) -> None:
        """Stop watching: the watch thread sees the stop event within ``step_ms``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._watch()
            except Exception as exc:  # never fatal: log, wait, start again
                self.failures += 1
                self._failing += 1
                delay = min(self._retry_s * 2 ** (self._failing - 1), MAX_RETRY_S)
                log.error(
                    "character watcher failed; the characters loaded keep serving",
                    folder=str(self.folder.path),
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=delay,
                    exc_info=not isinstance(exc, OSError),
                )
            else:
                delay = self._retry_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _watch(self) -> None:
        folder = self.folder.path
        if not folder.is_dir():
            raise FileNotFoundError(f"the characters folder {folder} does not exist")
        # The lorebooks folder too, when there is one: a changed book reloads the books and
        # every character (those that attach it get a new version).
        shelf = self.folder.lorebooks
        books = shelf.path if shelf is not None and shelf.path.is_dir() else None
        caught_up = False
        batches = awatch(
            folder,
            *([books] if books is not None else []),
            watch_filter=_character_change,
            debounce=self._debounce_ms,
            step=self._step_ms,
            stop_event=self._stop,
            rust_timeout=self._idle_ms,
            yield_on_timeout=True,
            recursive=False,
            force_polling=self._force_polling,
        )
        async with contextlib.aclosing(batches):  # the OS watch closes even when we fail
            async for changes in batches:
                changed = {Path(name) for _, name in changes}
                if not caught_up or (books is not None and _under(books, changed)):
                    # The watch is running now: whatever changed before it started is caught.
                    rescan = functools.partial(self.folder.rescan, with_lorebooks=True)
                    self._apply(await asyncio.to_thread(rescan))
                    caught_up = True
                elif changed:
                    paths = {folder / path.name for path in changed}
                    self._apply(await asyncio.to_thread(self.folder.read, paths))
                if not folder.is_dir():
                    raise FileNotFoundError(f"the characters folder {folder} was removed")

    def _apply(self, reads: Iterable[FileRead]) -> None:
        self.folder.apply(list(reads))
        self.batches += 1
        self._failing = 0


def _character_change(_change: Change, path: str) -> bool:
    return is_character_file(Path(path)) or is_lorebook_file(Path(path))


def _under(folder: Path, paths: Iterable[Path]) -> bool:
    resolved = folder.resolve()
    return any(path.parent.resolve() == resolved for path in paths)
