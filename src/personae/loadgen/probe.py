"""The server's CPU and memory while the load runs: from /proc when its pid is known (same
machine), else from its ``/metrics`` (the ``process_*`` gauges prometheus_client exports).

CPU is reported in cores (1.0 = one core busy on average over the run); RSS at the start, at
the end and the highest sample (every half second).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SAMPLE_S = 0.5
_GAUGE = re.compile(
    r"^(?:\w+_)?process_(cpu_seconds_total|resident_memory_bytes)(?:\{[^}]*\})?\s+(\S+)$",
    re.MULTILINE,
)


class Unreadable(Exception):
    pass


def proc_reading(pid: int) -> tuple[float, int]:
    """(CPU seconds used so far, RSS bytes) of ``pid``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise Unreadable(f"no process {pid}: {exc}") from exc
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return cpu, int(line.split()[1]) * 1024
    raise Unreadable(f"no VmRSS for process {pid}")


def metrics_reading(text: str) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) from a Prometheus exposition, summed over processes."""
    cpu, rss, seen = 0.0, 0.0, set()
    for name, value in _GAUGE.findall(text):
        seen.add(name)
        if name == "cpu_seconds_total":
            cpu += float(value)
        else:
            rss += float(value)
    if seen != {"cpu_seconds_total", "resident_memory_bytes"}:
        raise Unreadable(
            "/metrics has no process_cpu_seconds_total and process_resident_memory_bytes"
        )
    return cpu, int(rss)


class ServerProbe:
    def __init__(self, *, pid: int | None, base_url: str, api_key: str | None) -> None:
        self.pid = pid
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.source = f"/proc/{pid}" if pid is not None else f"{self.base_url}/metrics"
        self.problem: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._first: tuple[float, float, int] | None = None  # (wall, cpu, rss)
        self._peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> tuple[float, int]:
        if self.pid is not None:
            return proc_reading(self.pid)
        if self._client is None:
            self._client = httpx.AsyncClient(headers=self.headers, timeout=10)
        try:
            response = await self._client.get(f"{self.base_url}/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise Unreadable(f"/metrics: {exc!r}") from exc
        return metrics_reading(response.text)

    async def start(self) -> None:
        try:
            cpu, rss = await self._read()
        except Unreadable as exc:
            self.problem = str(exc)
            return
        self._first = (time.monotonic(), cpu, rss)
        self._peak = rss
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(_SAMPLE_S)
            try:
                _, rss = await self._read()
            except Unreadable:
                continue
            self._peak = max(self._peak, rss)

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
        result: dict[str, Any] = {"source": self.source, "problem": self.problem}
        try:
            if self._first is None:
                return result
            cpu, rss = await self._read()
            wall0, cpu0, rss0 = self._first
            result |= {
                "cpu_cores": round((cpu - cpu0) / max(1e-9, time.monotonic() - wall0), 3),
                "rss_mib_start": round(rss0 / 2**20, 1),
                "rss_mib_peak": round(max(self._peak, rss) / 2**20, 1),
                "rss_mib_end": round(rss / 2**20, 1),
            }
        except Unreadable as exc:
            result["problem"] = str(exc)
        finally:
            if self._client is not None:
                await self._client.aclose()
        return result
