"""An experiment's report: per variant, what its turns looked like, with enough statistics
(a Wilson interval on rates) to decide whether to ramp up, hold or roll back."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Z_95 = 1.959964  # two-sided 95 %


@dataclass(frozen=True, slots=True)
class TurnRecord:
    variant: str
    user: str
    latency_ms: float
    error: bool = False
    tokens: int = 0
    feedback: int | None = None  # +1 thumbs up, -1 thumbs down, None: none given


@dataclass(frozen=True, slots=True)
class Interval:
    rate: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class VariantReport:
    variant: str
    turns: int
    users: int
    latency_ms: dict[str, float]  # p50, p90, p99
    error_rate: Interval
    tokens_per_turn: float
    feedback_given: int
    thumbs_up: Interval  # of the turns that got feedback
    feedback_rate: Interval = Interval(0.0, 0.0, 1.0)  # of all turns, those that got feedback


def wilson(successes: int, trials: int, z: float = Z_95) -> Interval:
    """The Wilson score interval: honest at small counts and at rates near 0 or 1, where the
    normal approximation claims certainty it does not have."""
    if trials == 0:
        return Interval(0.0, 0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(p, max(0.0, centre - spread), min(1.0, centre + spread))


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def report(records: Iterable[TurnRecord], variants: Sequence[str]) -> list[VariantReport]:
    """One row per variant, in ``variants`` order (a variant with no turns yet included)."""
    by_variant: dict[str, list[TurnRecord]] = {name: [] for name in variants}
    for record in records:
        by_variant.setdefault(record.variant, []).append(record)
    rows = []
    for name, turns in by_variant.items():
        latencies = sorted(r.latency_ms for r in turns)
        rated = [r.feedback for r in turns if r.feedback is not None]
        rows.append(
            VariantReport(
                variant=name,
                turns=len(turns),
                users=len({r.user for r in turns}),
                latency_ms={f"p{p}": percentile(latencies, p) for p in (50, 90, 99)},
                error_rate=wilson(sum(r.error for r in turns), len(turns)),
                tokens_per_turn=sum(r.tokens for r in turns) / len(turns) if turns else 0.0,
                feedback_given=len(rated),
                thumbs_up=wilson(sum(1 for f in rated if f > 0), len(rated)),
                feedback_rate=wilson(len(rated), len(turns)),
            )
        )
    return rows
