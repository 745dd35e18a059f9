"""Several worker processes, one ``/metrics``: prometheus-client's multiprocess mode.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts), every metric writes its
values to memory-mapped files in that folder, one per process, and a scrape of any worker
merges all of them (``MultiProcessCollector``): counters and histograms are summed over the
processes, dead ones included; gauges are summed (or maxed) over the live ones.

A custom collector only sees its own process, so the live state (``LiveStateCollector``) is
*published* instead: each worker writes its current values into its own files
(``LiveStatePublisher.publish``), at every scrape it answers and every few seconds. Each
process writes absolute values, which the merge adds up, so nothing is counted twice.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess, values
from prometheus_client.registry import Collector

from personae.errors import ConfigurationError

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def check_multiprocess_dir(path: str) -> Path:
    """The folder, after checking that this process really writes there."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigurationError(f"{ENV}={path} is not a directory")
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus-client chooses its storage when first imported.
        raise ConfigurationError(f"{ENV} must be set before the process starts")
    return folder


def forget_dead_workers(folder: Path) -> list[int]:
    """Drop the gauge files of processes that are gone (their counters stay, as they
    should); returns their pids. A process manager that reports dead workers (gunicorn's
    ``child_exit`` calling ``multiprocess.mark_process_dead``) makes this unnecessary."""
    dead = set()
    for path in folder.glob("gauge_live*.db"):
        match = _LIVE_FILE.search(path.name)
        if match is not None and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class LiveStatePublisher:
    """Writes a collector's current samples into this process's multiprocess files."""

    def __init__(self, collector: Collector, *, gauge_modes: dict[str, str]) -> None:
        self._collector = collector
        self._modes = gauge_modes
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}

    def publish(self) -> None:
        for family in self._collector.collect():
            mode = self._modes.get(family.name, "livesum") if family.type == "gauge" else ""
            for sample in family.samples:
                labels = tuple(sample.labels.items())
                key = (sample.name, labels)
                value = self._values.get(key)
                if value is None:
                    value = self._values[key] = values.ValueClass(
                        family.type,
                        family.name,
                        sample.name,
                        tuple(name for name, _ in labels),
                        tuple(label for _, label in labels),
                        family.documentation,
                        multiprocess_mode=mode,
                    )
                value.set(sample.value)
