"""Percentile summaries (nearest rank: every figure reported is one that was measured)."""

from __future__ import annotations

import math
from collections.abc import Iterable

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values; ValueError when there are none."""
    if not ordered:
        raise ValueError("no values")
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = max(1, min(len(ordered), math.ceil(round(p / 100 * len(ordered), 9))))
    return ordered[rank - 1]


def summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """count, mean, p50, p90, p99, p99.9 and max; the figures are None when nothing counted."""
    ordered = sorted(v for v in values if v is not None)
    result: dict[str, float | int | None] = {"count": len(ordered)}
    if not ordered:
        return result | {"mean": None, **{_name(p): None for p in PERCENTILES}, "max": None}
    result["mean"] = round(sum(ordered) / len(ordered), 3)
    for p in PERCENTILES:
        result[_name(p)] = round(percentile(ordered, p), 3)
    result["max"] = round(ordered[-1], 3)
    return result


def _name(p: float) -> str:
    return f"p{p:g}"
