"""Multiprocess mode: two worker processes write, a third answers the scrape for all of them.

prometheus-client picks its storage when first imported, from ``PROMETHEUS_MULTIPROC_DIR``,
so every process here is a fresh interpreter started with the variable set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from personae.app import factory
from personae.errors import ConfigurationError
from personae.observability.metrics import Metrics
from tests.observability.conftest import Scrape
from tests.transports.conftest import REPO_CHARACTERS

ROOT = Path(__file__).parents[2]
FAKE = {"character": "aria", "backend": "fake"}


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(ROOT)}


def _scrape(folder: Path) -> Scrape:
    done = subprocess.run(
        [sys.executable, "-m", "tests.observability.mp_worker", "scrape"],
        env=_env(folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Scrape.parse(done.stdout)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[str]]]]:
    folder = tmp_path / "prom"
    folder.mkdir()
    with ExitStack() as stack:
        procs = []
        for args in (["2", "1"], ["3", "2", "open"]):
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.observability.mp_worker", "worker", *args],
                env=_env(folder),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(proc.kill)
            stack.enter_context(proc)
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            for line in proc.stdout:  # log lines (the breaker opening) may come first
                if line.strip() == "ready":
                    break
            else:
                pytest.fail("a worker ended before it was ready")
        yield folder, procs


def test_a_scrape_of_one_worker_sums_every_worker(
    workers: tuple[Path, list[subprocess.Popen[str]]],
) -> None:
    folder, procs = workers
    live = _scrape(folder)
    assert live.value("personae_turns_total", **FAKE, outcome="ok") == 5
    assert live.value("personae_turn_duration_seconds_count", **FAKE, outcome="ok") == 5
    assert live.value("personae_tokens_out_total", **FAKE) == 10
    assert live.value("personae_rejections_total", reason="overloaded") == 2
    assert live.value("personae_backend_calls_total", backend="fake") == 5  # 2 + 3
    assert live.value("personae_websocket_connections") == 3  # 1 + 2
    assert live.value("personae_conversation_sessions") == 4
    # One worker's breaker is open: the merged view says so (max over workers).
    assert live.value("personae_backend_circuit_state", backend="fake", state="open") == 1
    assert live.value("personae_backend_circuit_state", backend="fake", state="closed") == 1

    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    gone = _scrape(folder)
    # Counters outlive their processes; the live state of dead ones is dropped.
    assert gone.value("personae_turns_total", **FAKE, outcome="ok") == 5
    assert gone.value("personae_backend_calls_total", backend="fake") == 5
    assert gone.value("personae_websocket_connections") == 0
    assert gone.value("personae_backend_circuit_state", backend="fake", state="open") == 0


def test_the_variable_must_be_set_before_the_process_starts(tmp_path: Path) -> None:
    # This test process imported prometheus-client without it.
    with pytest.raises(ConfigurationError, match="before the process starts"):
        Metrics(multiprocess_dir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="not a directory"):
        Metrics(multiprocess_dir=str(tmp_path / "missing"))


def test_the_worker_factory_builds_an_app_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONAE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PERSONAE_CHARACTERS_DIR", str(REPO_CHARACTERS))
    monkeypatch.setenv("PERSONAE_LOG_CONTENT", "true")
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        factory,
        "configure_logging",
        lambda level, *, log_content: calls.append((level, log_content)),
    )
    app = factory.create_app()
    assert calls == [("info", True)]
    assert "/metrics" in {getattr(route, "path", None) for route in app.routes}
