"""Per-backend counters, and the read-only snapshots the metrics endpoint will scrape.

Counters only ever grow (Prometheus counters can be derived from them); ``in_flight`` is a
gauge. Latencies are kept as sums, counts and maxima, from which means follow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from personae.core.breaker import BreakerSnapshot


@dataclass(frozen=True, slots=True)
class Timing:
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def mean_s(self) -> float | None:
        return self.total_s / self.count if self.count else None

    def add(self, seconds: float) -> Timing:
        return Timing(self.count + 1, self.total_s + seconds, max(self.max_s, seconds))


@dataclass(slots=True)
class BackendStats:
    """Mutable counters, owned by one ``GuardedBackend``."""

    calls: int = 0  # attempts that reached the backend
    successes: int = 0  # replies that streamed to the end
    failures: int = 0  # attempts that ended in a backend error, before or after text
    midway_failures: int = 0  # of those, after text had reached the user
    skipped_open: int = 0  # turns that passed this backend over: circuit open
    skipped_busy: int = 0  # turns that passed this backend over: at its concurrency limit
    in_flight: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by error code
    first_token: Timing = Timing()  # call start to the first text
    duration: Timing = Timing()  # call start to the end of a successful reply


@dataclass(frozen=True, slots=True)
class BackendSnapshot:
    name: str
    breaker: BreakerSnapshot
    calls: int
    successes: int
    failures: int
    midway_failures: int
    skipped_open: int
    skipped_busy: int
    in_flight: int
    errors: Mapping[str, int]
    first_token: Timing
    duration: Timing

    @classmethod
    def of(cls, name: str, stats: BackendStats, breaker: BreakerSnapshot) -> BackendSnapshot:
        return cls(
            name=name,
            breaker=breaker,
            calls=stats.calls,
            successes=stats.successes,
            failures=stats.failures,
            midway_failures=stats.midway_failures,
            skipped_open=stats.skipped_open,
            skipped_busy=stats.skipped_busy,
            in_flight=stats.in_flight,
            errors=MappingProxyType(dict(stats.errors)),
            first_token=stats.first_token,
            duration=stats.duration,
        )


@dataclass(slots=True)
class ChainStats:
    """Counters of one routed chain (``RoutedChatModel``)."""

    turns: int = 0
    failovers: int = 0  # a later backend answered after an earlier one failed or was skipped
    retries: int = 0  # extra rounds over the chain after a backoff
    exhausted: int = 0  # turns that no backend could answer
    cache_hits: int = 0


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    name: str
    backends: tuple[str, ...]
    turns: int
    failovers: int
    retries: int
    exhausted: int
    cache_hits: int
