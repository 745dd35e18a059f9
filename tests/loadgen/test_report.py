"""Baselines: loaded with clear errors, compared figure by figure with the right sense of
better; and the table renders every section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from personae.loadgen.config import BenchConfig
from personae.loadgen.outcome import TurnOutcome
from personae.loadgen.report import build_report, compare, load_baseline, render
from personae.loadgen.tally import Tally

MS = 1_000_000


def _report(latencies_ms: list[int], errors: int = 0) -> dict[str, Any]:
    tally = Tally()
    for i, latency in enumerate(latencies_ms):
        text = f"a{i * MS} t{(i + 1) * MS}"
        tally.started += 1
        tally.record(
            TurnOutcome(
                sent_ns=i * MS,
                first_content_ns=(i + 2) * MS,
                done_ns=(i + latency) * MS,
                text=text,
                deltas=1,
            )
        )
    for _ in range(errors):
        tally.started += 1
        tally.record(TurnOutcome(sent_ns=0, error="http_503"))
    config = BenchConfig(url="http://127.0.0.1:1", rate=10, duration_s=1000)
    return build_report(
        config,
        tally,
        characters=["aria"],
        start_ns=0,
        elapsed_s=1000,
        server={
            "source": "/proc/1",
            "problem": None,
            "cpu_cores": 0.5,
            "rss_mib_start": 1.0,
            "rss_mib_peak": 2.0,
            "rss_mib_end": 2.0,
        },
        load_average=([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
    )


def test_a_report_counts_turns_errors_and_throughput() -> None:
    report = _report([10] * 50, errors=2)
    assert report["turns"] == {
        "started": 52,
        "completed": 50,
        "failed": 2,
        "dropped": 0,
        "completed_in_duration": 50,
        "warmup_failed": 0,
    }
    assert report["errors"] == {"http_503": 2}
    assert report["throughput"]["turns_per_s"] == 0.05
    assert report["latency_ms"]["p50"] == 10
    assert report["added_latency_ms"]["p50"] == 9  # 10 ms end to end, 1 ms in the backend
    json.dumps(report)  # JSON-ready


def test_compare_marks_lower_latency_and_higher_throughput_as_better(tmp_path: Path) -> None:
    before = _report([20] * 50)
    now = _report([10] * 100)
    deltas = compare(now, before)
    assert deltas["latency_ms.p50"] == {
        "baseline": 20.0,
        "now": 10.0,
        "delta": -10.0,
        "pct": -50.0,
        "better": True,
    }
    assert deltas["throughput.turns_per_s"]["better"] is True
    assert deltas["turns.failed"]["better"] is None  # unchanged
    worse = compare(before, now)
    assert worse["latency_ms.p50"]["better"] is False


def test_render_shows_the_figures_and_the_deltas() -> None:
    report = _report([10] * 20)
    report["baseline_comparison"] = compare(report, _report([20] * 20))
    console = Console(record=True, width=200)
    render(report, console)
    text = console.export_text()
    for label in (
        "latency (end to end)",
        "gateway added latency",
        "turns per s",
        "server CPU",
        "-50.0%",
    ):
        assert label in text


def test_a_bad_baseline_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_baseline(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        load_baseline(broken)
    other = tmp_path / "other.json"
    other.write_text('{"tool": "locust"}')
    with pytest.raises(ValueError, match="not a personae bench report"):
        load_baseline(other)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_report([5])))
    assert load_baseline(good)["turns"]["completed"] == 1
