"""Background tasks that must keep running (the character watcher, the session sweeper, the
WebSocket heartbeat, retention, ...): each runs under a ``Supervisor`` that restarts it when
it crashes, after a backoff that doubles with each crash in a row, and reports every task's
state for ``/readyz``.

A supervised function is meant to run until it is cancelled: returning counts as a crash
too (something stopped that should not have). A task that ran for ``stable_after_s`` before
crashing starts again from the first backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class TaskState(enum.StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"  # crashed; waiting to start again
    STOPPED = "stopped"  # the supervisor closed


@dataclass(slots=True)
class TaskStatus:
    name: str
    state: TaskState = TaskState.RUNNING
    restarts: int = 0
    last_error: str | None = None
    retry_in_s: float | None = None  # in BACKOFF: the wait before the next start

    @property
    def healthy(self) -> bool:
        return self.state is TaskState.RUNNING

    def describe(self) -> str:
        """One line for ``/readyz``: ``ok`` or ``error: ...``, with the restarts so far."""
        if self.state is TaskState.RUNNING:
            if not self.restarts:
                return "ok"
            return f"ok (restarted {self.restarts} times; last error: {self.last_error})"
        if self.state is TaskState.BACKOFF:
            return (
                f"error: crashed ({self.last_error}); restart {self.restarts} "
                f"in {self.retry_in_s:.1f}s"
            )
        return "error: stopped"


class Supervisor:
    def __init__(
        self,
        *,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        stable_after_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s
        self._sleep = sleep
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._status: dict[str, TaskStatus] = {}
        self._closed = False

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` as a task named ``name`` and keep it running until ``close``."""
        if self._closed:
            raise RuntimeError("the supervisor is closed")
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is supervised already")
        status = self._status[name] = TaskStatus(name)
        self._tasks[name] = asyncio.create_task(self._keep(status, run), name=name)

    def status(self) -> dict[str, TaskStatus]:
        return dict(self._status)

    async def _keep(self, status: TaskStatus, run: Callable[[], Awaitable[None]]) -> None:
        crashes_in_a_row = 0
        while True:
            status.state, status.retry_in_s = TaskState.RUNNING, None
            started = self._clock()
            try:
                await run()
                error = "it returned"
            except Exception as exc:  # any crash: log it and start again
                error = f"{type(exc).__name__}: {exc}"
                log.error("background task crashed", task=status.name, exc_info=True)
            if self._clock() - started >= self.stable_after_s:
                crashes_in_a_row = 0
            crashes_in_a_row += 1
            delay = min(self.initial_backoff_s * 2 ** (crashes_in_a_row - 1), self.max_backoff_s)
            status.state, status.last_error, status.retry_in_s = TaskState.BACKOFF, error, delay
            status.restarts += 1
            log.warning("background task restarts", task=status.name, error=error, in_s=delay)
            await self._sleep(delay)

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for status in self._status.values():
            status.state, status.retry_in_s = TaskState.STOPPED, None
