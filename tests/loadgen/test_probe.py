"""The server probe reads a real process from /proc, and the process_* gauges of /metrics."""

from __future__ import annotations

import os

import pytest

from personae.loadgen.probe import Unreadable, metrics_reading, proc_reading

EXPOSITION = """\
# HELP personae_process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE personae_process_cpu_seconds_total counter
personae_process_cpu_seconds_total 12.5
# HELP personae_process_resident_memory_bytes Resident memory size in bytes.
# TYPE personae_process_resident_memory_bytes gauge
personae_process_resident_memory_bytes 1.048576e+08
personae_turns_total{outcome="ok"} 3.0
"""


def test_proc_reading_of_this_process() -> None:
    cpu, rss = proc_reading(os.getpid())
    assert cpu > 0
    assert 10 * 2**20 < rss < 64 * 2**30


def test_proc_reading_of_no_process() -> None:
    with pytest.raises(Unreadable, match="no process"):
        proc_reading(2**22 + 1)  # above pid_max


def test_metrics_reading_takes_the_process_gauges() -> None:
    assert metrics_reading(EXPOSITION) == (12.5, 104_857_600)


def test_metrics_without_process_gauges_are_unreadable() -> None:
    with pytest.raises(Unreadable, match="process_cpu_seconds_total"):
        metrics_reading('personae_turns_total{outcome="ok"} 3.0\n')
