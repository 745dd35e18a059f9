"""The per-variant report and its statistics."""

from __future__ import annotations

import pytest

from personae.core.experiments.report import TurnRecord, percentile, report, wilson


def test_wilson_interval_matches_known_values() -> None:
    # 81 of 263 (a textbook example): 0.3080, 95 % interval 0.2553 .. 0.3662.
    interval = wilson(81, 263)
    assert interval.rate == pytest.approx(0.30798, abs=1e-4)
    assert (interval.low, interval.high) == pytest.approx((0.2553, 0.3662), abs=1e-3)
    none = wilson(0, 10)  # no successes: the interval still admits some
    assert none.low == 0.0
    assert 0.25 < none.high < 0.35
    assert wilson(0, 0).high == 1.0  # no data: anything is possible


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (
        50.0,
        90.0,
        99.0,
    )
    assert percentile([], 50) == 0.0


def test_a_report_row_per_variant() -> None:
    records = [
        TurnRecord("control", "u1", 100.0, tokens=10, feedback=1),
        TurnRecord("control", "u1", 300.0, tokens=30),
        TurnRecord("v2", "u2", 50.0, error=True, tokens=0, feedback=-1),
        TurnRecord("v2", "u3", 70.0, tokens=20, feedback=1),
    ]
    rows = {row.variant: row for row in report(records, ["control", "v2", "v3"])}
    control, v2, v3 = rows["control"], rows["v2"], rows["v3"]
    assert (control.turns, control.users, control.tokens_per_turn) == (2, 1, 20.0)
    assert control.latency_ms == {"p50": 100.0, "p90": 300.0, "p99": 300.0}
    assert (v2.error_rate.rate, v2.feedback_given, v2.thumbs_up.rate) == (0.5, 2, 0.5)
    assert (v3.turns, v3.users, v3.error_rate.rate) == (0, 0, 0.0)
