"""Audit of model calls: a ``TurnObserver`` that writes one row per turn (who, for whom, from
where, which character and backend, outcome, tokens) and spends the tokens from the caller's
budgets. Observers must be quick and must not raise, so rows are queued and written in
batches by one task at a time."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from personae.core.observe import TurnObserver, TurnReport
from personae.core.ports import AuditLog
from personae.core.types import AuditEntry
from personae.security.gate import CallerGate, current_caller

log = structlog.get_logger(__name__)

INTERNAL_ACTOR = "internal"  # a turn no transport admitted (the in-process console)


class AuditWriter:
    """Queues entries and writes them in batches, off the caller's path."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._pending: list[AuditEntry] = []
        self._flushing: asyncio.Task[None] | None = None

    def submit(self, entry: AuditEntry) -> None:
        self._pending.append(entry)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.audit.record(batch)
            except Exception:
                log.exception("audit rows lost", count=len(batch))

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (before the log closes)."""
        while self._flushing is not None and not self._flushing.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._flushing)


class AuditObserver(TurnObserver):
    def __init__(self, writer: AuditWriter | None, gate: CallerGate | None) -> None:
        self.writer = writer
        self.gate = gate
        self._spending: set[asyncio.Task[None]] = set()

    def turn_finished(self, report: TurnReport) -> None:
        caller = current_caller.get()
        tokens = report.tokens_in + report.tokens_out
        if caller is not None and self.gate is not None and tokens:
            task = asyncio.get_running_loop().create_task(self.gate.spend_tokens(caller, tokens))
            self._spending.add(task)
            task.add_done_callback(self._spending.discard)
        if self.writer is None:
            return
        context = structlog.contextvars.get_contextvars()
        details: dict[str, object] = {
            "backend": report.backend,
            "tokens_in": report.tokens_in,
            "tokens_out": report.tokens_out,
            "latency_ms": round(report.latency_ms, 1),
        }
        for name in ("conversation", "trace_id"):
            if context.get(name):
                details[name] = context[name]
        if caller is None:
            entry = AuditEntry(
                "model.call",
                INTERNAL_ACTOR,
                report.outcome.value,
                report.character,
                details=details,
            )
        else:
            principal = caller.principal
            details["user"] = caller.user
            entry = AuditEntry(
                "model.call",
                principal.subject,
                report.outcome.value,
                report.character,
                role=principal.role.value,
                tenant=principal.tenant,
                key_id=principal.key_id,
                client=caller.client,
                details=details,
            )
        self.writer.submit(entry)
