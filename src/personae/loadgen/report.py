"""The report of a run: a JSON-ready dict, a rich table, and the deltas against a baseline.

Figures: throughput over the run's duration (turns, delivered deltas and tokens per second);
percentiles of end-to-end latency, time to first content, and what the path between client
and backend added to each (end to end minus the backend's own time, read from the fake
backend's stamps: see stamps.py); errors by kind; the server's CPU and memory.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from personae.loadgen.config import BenchConfig
from personae.loadgen.outcome import figures
from personae.loadgen.stats import summary
from personae.loadgen.tally import Tally

REPORT_VERSION = 1
_SUMMARIES = (
    ("latency_ms", "latency (end to end)"),
    ("ttft_ms", "time to first content"),
    ("added_latency_ms", "gateway added latency"),
    ("added_ttft_ms", "gateway added TTFT"),
    ("backend_ms", "backend's own time"),
)
_SHOWN = ("p50", "p90", "p99", "p99.9", "max")
# What a baseline comparison looks at: (section, figure); lower is better unless listed.
COMPARED = (
    ("throughput", "turns_per_s"),
    ("throughput", "deltas_per_s"),
    ("throughput", "tokens_per_s"),
    *((name, p) for name, _ in _SUMMARIES for p in ("p50", "p90", "p99", "p99.9")),
    ("turns", "failed"),
    ("server", "cpu_cores"),
    ("server", "rss_mib_peak"),
)
HIGHER_IS_BETTER = {
    ("throughput", "turns_per_s"),
    ("throughput", "deltas_per_s"),
    ("throughput", "tokens_per_s"),
}


def build_report(
    config: BenchConfig,
    tally: Tally,
    *,
    characters: list[str],
    start_ns: int,
    elapsed_s: float,
    server: dict[str, Any],
    load_average: tuple[list[float], list[float]],
    warmup_failures: int = 0,
) -> dict[str, Any]:
    completed = [o for o in tally.outcomes if o.ok]
    done = [figures(o) for o in completed]
    window_end = start_ns + int(config.duration_s * 1e9)
    in_window = [
        turn
        for turn, outcome in zip(done, completed, strict=True)
        if outcome.done_ns is not None and outcome.done_ns <= window_end
    ]
    duration = config.duration_s
    return {
        "tool": "personae bench",
        "report_version": REPORT_VERSION,
        "started_at": datetime.fromtimestamp(start_ns / 1e9, UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_average[0],
            "load_average_after": load_average[1],
        },
        "config": config.public(),
        "characters": characters,
        "elapsed_s": round(elapsed_s, 3),
        "turns": {
            "started": tally.started,
            "completed": tally.completed,
            "failed": tally.failed,
            "dropped": tally.dropped,
            "completed_in_duration": len(in_window),
            "warmup_failed": warmup_failures,
        },
        "throughput": {
            "turns_per_s": round(len(in_window) / duration, 2),
            "deltas_per_s": round(sum(f.deltas for f in in_window) / duration, 1),
            "tokens_per_s": round(sum(f.tokens for f in in_window) / duration, 1),
        },
        "latency_ms": summary(f.latency_ms for f in done),
        "ttft_ms": summary(f.ttft_ms for f in done),
        "added_latency_ms": summary(f.added_ms for f in done),
        "added_ttft_ms": summary(f.added_ttft_ms for f in done),
        "backend_ms": summary(f.backend_ms for f in done),
        "errors": dict(sorted(tally.errors.items())),
        "server": server,
    }


def load_baseline(path: Path) -> dict[str, Any]:
    """A report saved before (``--output``); ValueError saying what is wrong otherwise."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the baseline {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"the baseline {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("tool") != "personae bench":
        raise ValueError(f"the baseline {path} is not a personae bench report")
    return data


def _figure(report: dict[str, Any], section: str, name: str) -> float | None:
    value = (report.get(section) or {}).get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def compare(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each compared figure present in both: baseline, now, delta, percent change, and
    whether it got better."""
    deltas: dict[str, dict[str, Any]] = {}
    for section, name in COMPARED:
        now, before = _figure(report, section, name), _figure(baseline, section, name)
        if now is None or before is None:
            continue
        delta = now - before
        higher = (section, name) in HIGHER_IS_BETTER
        deltas[f"{section}.{name}"] = {
            "baseline": before,
            "now": now,
            "delta": round(delta, 3),
            "pct": round(100 * delta / before, 1) if before else None,
            "better": (delta > 0) == higher if delta else None,
        }
    return deltas


def render(report: dict[str, Any], console: Console) -> None:
    config, turns = report["config"], report["turns"]
    load = (
        "open loop at {rate:g} turns/s".format(**config)
        if config["rate"]
        else ("{users} users, think {think_s:g} s".format(**config))
    )
    mode = config["transport"] + (
        " stream" if config["stream"] and config["transport"] == "http" else ""
    )
    console.print(
        f"[bold]personae bench[/bold] {config['url']} over {mode}, {load}, "
        f"{config['duration_s']:g} s; load average {report['machine']['load_average_before']}"
    )
    deltas = report.get("baseline_comparison") or {}
    table = Table("figure", *_SHOWN)
    for key, title in _SUMMARIES:
        values = report[key]
        if not values.get("count"):
            continue
        table.add_row(
            f"{title} ms", *(_cell(values.get(p), deltas.get(f"{key}.{p}")) for p in _SHOWN)
        )
    console.print(table)
    throughput = report["throughput"]
    rows = Table("figure", "value", show_header=False)
    rows.add_row(
        "turns completed / failed / dropped",
        f"{turns['completed']} / {turns['failed']} / {turns['dropped']}",
    )
    for name in ("turns_per_s", "deltas_per_s", "tokens_per_s"):
        rows.add_row(
            name.replace("_", " "), _cell(throughput[name], deltas.get(f"throughput.{name}"))
        )
    errors = ", ".join(f"{kind}: {n}" for kind, n in report["errors"].items()) or "none"
    rows.add_row("errors", errors)
    server = report["server"]
    if "cpu_cores" in server:
        rows.add_row("server CPU cores", _cell(server["cpu_cores"], deltas.get("server.cpu_cores")))
        rows.add_row(
            "server RSS MiB start / peak / end",
            f"{server['rss_mib_start']} / {server['rss_mib_peak']} / {server['rss_mib_end']}",
        )
    else:
        rows.add_row("server CPU / RSS", f"unknown ({server.get('problem')})")
    console.print(rows)


def _cell(value: Any, delta: dict[str, Any] | None) -> str:
    text = "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)
    if delta is None or delta["pct"] is None:
        return text
    colour = "green" if delta["better"] else "red" if delta["better"] is False else "white"
    return f"{text} [{colour}]({delta['pct']:+.1f}%)[/{colour}]"
