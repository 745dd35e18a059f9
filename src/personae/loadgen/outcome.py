"""One turn as the load generator saw it, and the figures it yields."""

from __future__ import annotations

from dataclasses import dataclass

from personae.loadgen.stamps import Stamps, read_stamps


@dataclass
class TurnOutcome:
    """Times are ``time.time_ns()``, the clock the fake backend stamps with."""

    sent_ns: int
    error: str | None = None  # a short kind: http_503, timeout, disconnected, backend_unavailable
    first_content_ns: int | None = None  # the first non-empty piece of the reply arrived
    done_ns: int | None = None
    deltas: int = 0  # delta frames (WebSocket) or content chunks (SSE) received
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.done_ns is not None

    @property
    def latency_ms(self) -> float | None:
        return None if self.done_ns is None else (self.done_ns - self.sent_ns) / 1e6

    @property
    def ttft_ms(self) -> float | None:
        if self.first_content_ns is None:
            return None
        return (self.first_content_ns - self.sent_ns) / 1e6

    def stamps(self) -> Stamps:
        return read_stamps(self.text)


@dataclass(frozen=True)
class TurnFigures:
    latency_ms: float
    ttft_ms: float | None
    backend_ms: float | None
    added_ms: float | None  # end to end minus the backend's own time
    added_ttft_ms: float | None  # time to first token minus the backend's own
    tokens: int
    deltas: int


def figures(outcome: TurnOutcome) -> TurnFigures:
    """The figures of a completed turn (``outcome.ok``)."""
    latency = outcome.latency_ms
    assert latency is not None, "figures of a turn that did not complete"
    stamps = outcome.stamps()
    backend = stamps.backend_ms
    backend_ttft = stamps.backend_ttft_ms
    ttft = outcome.ttft_ms
    return TurnFigures(
        latency_ms=latency,
        ttft_ms=ttft,
        backend_ms=backend,
        added_ms=None if backend is None else latency - backend,
        added_ttft_ms=None if backend_ttft is None or ttft is None else ttft - backend_ttft,
        tokens=stamps.tokens or len(outcome.text.split()),
        deltas=outcome.deltas,
    )
