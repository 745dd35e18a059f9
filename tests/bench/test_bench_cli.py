"""The CI smoke run: ``personae fake-llm`` and ``personae serve`` as real processes on loopback,
then ``personae bench`` for a few seconds at a tiny load, over WebSocket and over HTTP, its JSON
report checked for sane figures. And the commands' refusals of bad options."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from personae.cli import cli

REPO = Path(__file__).parents[2]
PERSONAE = [sys.executable, "-m", "personae"]
_LISTENING = re.compile(r"listening on (http://[\d.:]+)")


@contextmanager
def _process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Runs ``argv`` until the block ends; yields (the URL it announced, its pid)."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := _LISTENING.search(log.read_text(errors="replace"))):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no announcement:\n{log.read_text()}"
            time.sleep(0.05)
        yield found.group(1), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A fake backend and a Personae server in front of it: yields Personae's URL and pid."""
    root = tmp_path_factory.mktemp("bench-smoke")
    fake_argv = [*PERSONAE, "fake-llm", "--tokens-per-s", "200", "--reply-tokens", "uniform:5-15"]
    with _process(fake_argv, root / "fake.log") as (fake_url, _):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
        env.update(
            PERSONAE_CONFIG_DIR=str(root),
            PERSONAE_DATA_DIR=str(root / "data"),
            PERSONAE_CHARACTERS_DIR=str(REPO / "characters"),
            PERSONAE_LLM_BASE_URL=f"{fake_url}/v1",
            PERSONAE_LLM_MODEL="fake",
            PERSONAE_LLM_API_KEY="not-secret",
            PERSONAE_LOG_LEVEL="warning",
            HF_HUB_OFFLINE="1",
        )
        serve = [*PERSONAE, "serve", "--host", "127.0.0.1", "--port", "0"]
        with _process(serve, root / "serve.log", env) as server:
            yield server


def _bench(url: str, *options: str) -> dict[str, Any]:
    argv = [*PERSONAE, "bench", "--url", url, "--json", "--no-progress", *options]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _sane(report: dict[str, Any]) -> None:
    turns = report["turns"]
    assert turns["completed"] > 0
    assert turns["failed"] == 0
    assert report["errors"] == {}
    assert report["throughput"]["turns_per_s"] > 0
    for name in ("latency_ms", "ttft_ms", "added_latency_ms", "added_ttft_ms"):
        figures = report[name]
        assert figures["count"] == turns["completed"], name
        ordered = [figures[p] for p in ("p50", "p90", "p99", "p99.9", "max")]
        assert ordered == sorted(ordered), name
        assert figures["p50"] > 0, name
    assert report["added_latency_ms"]["p50"] < report["latency_ms"]["p50"]
    assert report["server"]["cpu_cores"] > 0
    assert report["server"]["rss_mib_peak"] > 20


@pytest.mark.slow
def test_a_websocket_run_reports_sane_figures(stack: tuple[str, int]) -> None:
    url, pid = stack
    _sane(
        _bench(
            url,
            "--transport",
            "ws",
            "--users",
            "2",
            "--think",
            "0.05",
            "--duration",
            "3",
            "--server-pid",
            str(pid),
        )
    )


@pytest.mark.slow
def test_an_http_run_compares_with_a_baseline(stack: tuple[str, int], tmp_path: Path) -> None:
    url, _ = stack
    saved = tmp_path / "baseline.json"
    first = _bench(url, "--rate", "8", "--duration", "2", "--output", str(saved))
    _sane(first)  # CPU and RSS from /metrics this time
    assert json.loads(saved.read_text()) == first
    second = _bench(url, "--rate", "8", "--duration", "2", "--baseline", str(saved))
    _sane(second)
    delta = second["baseline_comparison"]["latency_ms.p50"]
    assert delta["baseline"] == first["latency_ms"]["p50"]
    assert delta["now"] == second["latency_ms"]["p50"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--rate", "1", "--users", "2"], "exactly one"),
        (["bench", "--users", "2", "--transport", "carrier-pigeon"], "transport"),
        (["bench", "--rate", "1", "--baseline", "/nonexistent/report.json"], "cannot read"),
        (["fake-llm", "--reply-tokens", "lots"], "bad reply length spec"),
        (["fake-llm", "--fault", "429=0.7", "--fault", "500=0.7"], "more than 1"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_bench_fails_when_nothing_answers() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--url",
            "http://127.0.0.1:9",
            "--rate",
            "5",
            "--duration",
            "0.3",
            "--no-progress",
            "--characters",
            "aria",
        ],
    )
    assert result.exit_code == 1
    assert "connect_failed" in result.output
