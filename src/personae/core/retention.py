"""Retention: records older than a configured number of days are purged, kind by kind
(messages, memories, audit rows), by a job that runs now and then under the supervisor.

Each kind is anything with ``purge_before(moment) -> int`` (``core.ports.Purgeable``): the
memory store's own method, and the SQLite purges in ``storage/sqlite/retention.py``. The
clock is injected, so tests move time by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from personae.core.ports import Purgeable

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Retained:
    """One kind of record and how long it is kept."""

    records: Purgeable
    days: float


class RetentionJob:
    def __init__(
        self,
        kinds: Mapping[str, Retained],
        *,
        clock: Clock = utc_now,
        on_purged: Callable[[str, int], None] | None = None,
    ) -> None:
        self.kinds = dict(kinds)
        self._clock = clock
        self._on_purged = on_purged or (lambda _kind, _count: None)

    async def run_once(self) -> dict[str, int]:
        """Purge every kind once; returns how many records of each kind went. A kind that
        fails is logged and skipped (the others still run); the job raises at the end, so
        the supervisor sees the failure."""
        now = self._clock()
        purged: dict[str, int] = {}
        failed: list[str] = []
        for kind, retained in self.kinds.items():
            try:
                count = await retained.records.purge_before(now - timedelta(days=retained.days))
            except Exception:
                log.exception("retention purge failed", kind=kind)
                failed.append(kind)
                continue
            purged[kind] = count
            self._on_purged(kind, count)
        if any(purged.values()):
            log.info("retention purge", **purged)
        if failed:
            raise RetentionFailed(f"retention purge failed for {', '.join(failed)}")
        return purged

    async def run_forever(self, interval_s: float, *, sleep: Sleep = asyncio.sleep) -> None:
        """``run_once`` now and every ``interval_s`` after, until cancelled."""
        while True:
            await self.run_once()
            await sleep(interval_s)


class RetentionFailed(Exception):
    """At least one kind could not be purged (each failure was logged)."""
