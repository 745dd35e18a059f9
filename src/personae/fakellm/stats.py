"""What the fake backend counts, read back with ``GET /stats`` (and zeroed by ``POST
/stats/reset``): requests, streams, tokens, faults injected, and pacing lag.

Pacing lag is how late a token left against its schedule: a gateway that reads the stream too
slowly (back-pressure) or a starved CPU shows up here, not as backend time.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeStats:
    requests: int = 0
    streams_started: int = 0
    streams_finished: int = 0
    active: int = 0
    peak_active: int = 0
    tokens: int = 0
    embeddings: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    lag_ms: list[float] = field(default_factory=list)

    def stream_opened(self) -> None:
        self.streams_started += 1
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)

    def as_dict(self) -> dict[str, Any]:
        lags = sorted(self.lag_ms)
        return {
            "requests": self.requests,
            "streams_started": self.streams_started,
            "streams_finished": self.streams_finished,
            "active": self.active,
            "peak_active": self.peak_active,
            "tokens": self.tokens,
            "embeddings": self.embeddings,
            "faults": dict(self.faults),
            "pacing_lag_ms": {
                "count": len(lags),
                "p50": _rank(lags, 50),
                "p90": _rank(lags, 90),
                "p99": _rank(lags, 99),
                "max": round(lags[-1], 3) if lags else None,
            },
        }


def _rank(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(round(p / 100 * len(ordered), 9)) - 1)], 3)
