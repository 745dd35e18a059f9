"""Records every turn an experiment's variant ran, off the turn's path.

An observer may not block a turn, so ``turn_finished`` only appends to a buffer and makes
sure one writer task is running; that task writes whatever has gathered in one transaction
and loops until the buffer is empty. ``flush`` waits for it (a report reads after a flush, so
it sees every turn that ended before it was asked for); ``close`` flushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from personae.core.experiments.store import ExperimentStore, TurnRow
from personae.core.observe import TurnObserver, TurnReport
from personae.core.overrides import ExperimentTag

log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VariantRecorder(TurnObserver):
    def __init__(self, store: ExperimentStore, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._store = store
        self._clock = clock
        self._buffer: list[TurnRow] = []
        self._writer: asyncio.Task[None] | None = None

    def turn_finished(self, report: TurnReport) -> None:
        if report.experiment is None or report.variant is None:
            return
        self._buffer.append(
            TurnRow(
                tag=ExperimentTag(report.experiment, report.variant),
                user=report.user,
                conversation=report.conversation,
                message=report.reply_id,
                outcome=report.outcome.value,
                latency_ms=report.latency_ms,
                tokens=report.tokens_in + report.tokens_out,
                at=self._clock(),
            )
        )
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._buffer:
            rows, self._buffer = self._buffer, []
            try:
                await self._store.record_turns(rows)
            except Exception:  # the report loses these turns; the turns themselves are fine
                log.exception("could not record experiment turns", turns=len(rows))

    async def flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        await self.flush()
