"""The background tasks of a runtime, under one supervisor (core/supervisor.py): the character
watcher, the session sweeper, retention, and (from ``build_app``) the WebSocket heartbeat.
Also what ``/readyz`` says about backends and coordination."""

from __future__ import annotations

import asyncio

import structlog

from personae.app.database import Stores
from personae.characters.reload import CharacterFolder
from personae.characters.watcher import CharacterWatcher
from personae.core.hub import ConversationHub
from personae.core.ports import Purgeable
from personae.core.retention import Retained, RetentionJob
from personae.core.sessions import SessionRegistry
from personae.core.supervisor import Supervisor
from personae.errors import CoordinationError
from personae.llm.pool import BackendPool
from personae.observability.metrics import Metrics
from personae.settings import Settings

log = structlog.get_logger(__name__)


class SupervisedWatcher:
    """Hot reload under the supervisor: a fresh ``CharacterWatcher`` at each (re)start (a
    watcher runs once), failures counted across them for the metrics."""

    def __init__(self, folder: CharacterFolder) -> None:
        self.folder = folder
        self.current: CharacterWatcher | None = None
        self._failures_before = 0

    async def run(self) -> None:
        if self.current is not None:
            self._failures_before += self.current.failures
        self.current = CharacterWatcher(self.folder)
        await self.current.run()

    @property
    def loaded(self) -> int:
        return len(self.folder.catalog)

    @property
    def invalid(self) -> int:
        return len(self.folder.broken)

    @property
    def watch_failures(self) -> int:
        current = self.current.failures if self.current is not None else 0
        return self._failures_before + current


async def rescan_characters(folder: CharacterFolder) -> None:
    """Read the whole folder again and serve what changed: another node changed it."""
    reads = await asyncio.to_thread(folder.rescan, with_lorebooks=True)
    folder.apply(reads, notify=False)  # an echo: not announced again


async def sweep_sessions(sessions: SessionRegistry, interval_s: float) -> None:
    """Expire idle conversation sessions every ``interval_s``, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        await sessions.sweep()


async def end_orphan_turns(hub: ConversationHub, interval_s: float) -> None:
    """Every ``interval_s``, end the turns of nodes that stopped (coordination: redis)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            ended = await hub.end_orphans()
        except CoordinationError as exc:  # Redis away: try again next round
            log.warning("orphaned turns not checked", error=str(exc))
            continue
        if ended:
            log.info("orphaned turns ended", count=ended)


async def start_retention(
    settings: Settings,
    supervisor: Supervisor,
    *,
    metrics: Metrics | None,
    memory: Purgeable | None = None,
    stores: Stores,
    turn_records: Purgeable | None = None,
) -> RetentionJob | None:
    """The retention job for the kinds that have a number of days, or None when none do."""
    retention = settings.retention
    kinds: dict[str, Retained] = {}
    if retention.messages_days is not None:
        kinds["messages"] = Retained(stores.message_retention, retention.messages_days)
    if retention.audit_days is not None:
        kinds["audit"] = Retained(stores.audit_retention, retention.audit_days)
    if retention.memories_days is not None:
        if memory is None:
            # The memory store is not wired into the runtime yet (the memory work does it):
            # say so rather than pretend memories are purged.
            log.warning("retention.memories_days is set but no memory store is running")
        else:
            kinds["memories"] = Retained(memory, retention.memories_days)
    if turn_records is not None and settings.replay.records_days is not None:
        kinds["turn_records"] = Retained(turn_records, settings.replay.records_days)
    if not kinds:
        return None
    job = RetentionJob(kinds, on_purged=metrics.observer.purged if metrics else None)
    supervisor.start("retention", lambda: job.run_forever(retention.interval_s))
    return job


def backend_checks(pool: BackendPool) -> dict[str, str]:
    """``backends``: ok while at least one backend's circuit is not open; each backend's own
    line says ``ok`` or why it is passed over (one open circuit alone is not unready: the
    router fails over)."""
    checks: dict[str, str] = {}
    open_ = 0
    snapshot = pool.snapshot()
    for name, backend in sorted(snapshot.backends.items()):
        state = str(backend.breaker.state)
        if state == "open":
            open_ += 1
            checks[f"backend:{name}"] = "warning: circuit open (failing; probed again later)"
        else:
            checks[f"backend:{name}"] = "ok" if state == "closed" else f"ok ({state})"
    total = len(snapshot.backends)
    if total and open_ == total:
        checks["backends"] = "error: every backend's circuit is open"
    else:
        checks["backends"] = "ok"
    return checks
