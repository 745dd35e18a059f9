"""One log line per turn, with what an operator looks for first: outcome, timings, tokens.

The ids (``trace_id``, ``user``, ``character``, ``conversation``) come from the log context
that the transports and ``ChatService`` bind; the line never carries message text.
"""

from __future__ import annotations

import structlog

from personae.core.observe import TurnObserver, TurnOutcome, TurnReport

log = structlog.get_logger("personae.turns")


class TurnLogObserver(TurnObserver):
    def turn_finished(self, report: TurnReport) -> None:
        quiet = report.outcome in (TurnOutcome.OK, TurnOutcome.CANCELLED)  # a client may leave
        (log.info if quiet else log.warning)(
            "turn finished",
            character=report.character,
            backend=report.backend,
            outcome=report.outcome.value,
            latency_ms=round(report.latency_ms, 1),
            ttft_ms=round(report.ttft_ms, 1) if report.ttft_ms is not None else None,
            tokens_in=report.tokens_in,
            tokens_out=report.tokens_out,
        )

    def request_rejected(self, reason: str) -> None:
        # Debug only: a flood of refusals must not become a flood of log lines (the
        # personae_rejections_total counter counts them all).
        log.debug("request rejected", reason=reason)
