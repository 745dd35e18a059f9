"""Shared by the benchmarks: run ``personae serve`` (or another script) as a subprocess, read its
memory and CPU from /proc, raise the open-files limit, and print figures.

Not a benchmark itself (the leading underscore keeps it apart from the runnable scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
CHARACTERS_DIR = REPO / "characters"
_LISTENING = re.compile(r"listening on (http://[\w.:\[\]-]+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- limits and /proc -----------------------------------------------------------------------


def raise_nofile(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit towards ``wanted`` (capped by the hard
    limit); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else int(hard)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (its threads included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


class CpuMeter:
    """CPU used between ``start()`` and ``stop()``, in cores (1.0 = one core busy): by each
    watched process, and by the whole machine (from /proc/stat, every process counted)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._wall = 0.0

    @staticmethod
    def _machine_ticks() -> tuple[float, float]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return float(sum(values) - idle), float(sum(values))

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = self._machine_ticks()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        used = {
            name: round((cpu_seconds(pid) - self._start[name]) / wall, 3)
            for name, pid in self.pids.items()
        }
        busy, total = self._machine_ticks()
        cores = os.cpu_count() or 1
        used["machine"] = round((busy - self._machine[0]) / (total - self._machine[1]) * cores, 3)
        used["machine_cores"] = cores
        return used


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- subprocesses ---------------------------------------------------------------------------


def _nofile_raiser(limit: int) -> Callable[[], None]:
    def raise_in_child() -> None:  # runs in the child between fork and exec
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return raise_in_child


class Subprocess:
    """A child process that announces ``... listening on http://HOST:PORT`` in its log (stdout
    and stderr both go to one file), or, given ``url`` and ``ready_path``, one that is ready
    once ``GET url + ready_path`` answers 200 (a server that announces nothing parseable).
    Always stopped on exit: SIGTERM (a graceful shutdown), then SIGKILL."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        nofile: int | None = None,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 20.0,
        url: str | None = None,
        ready_path: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self._known_url = url
        self._ready_path = ready_path
        self.name = name
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd
        self.nofile = nofile
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._logdir = tempfile.TemporaryDirectory(prefix=f"bench-{name}-log-")
        self.log_path = Path(self._logdir.name) / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Self:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_nofile_raiser(self.nofile) if self.nofile else None,
            )
        try:
            self.url = self._wait_for_url()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is not None:
            tail = self.log_tail()
            if tail:
                print(f"--- last lines of the {self.name} log ---\n{tail}", file=sys.stderr)
        keep = os.environ.get("BENCH_KEEP_LOGS")  # a folder to copy the log into
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log_path, Path(keep) / f"{self.name}-{self.pid}.log")
        self._logdir.cleanup()

    def _ready(self) -> str | None:
        if self._known_url is None:
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            return found.group(1) if found else None
        try:
            probe = self._known_url + (self._ready_path or "/")
            with urllib.request.urlopen(probe, timeout=2) as response:
                return self._known_url if response.status == 200 else None
        except OSError:
            return None

    def _wait_for_url(self) -> str:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            found = self._ready()
            if found:
                return found
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before listening:\n"
                    + self.log_tail()
                )
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen within {self.start_timeout_s} s")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """Stop the child (idempotent); returns its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode


def personae_server(
    *,
    llm_base_url: str,
    data_root: Path,
    realtime: Mapping[str, object] | None = None,
    nofile: int | None = None,
    log_level: str = "warning",
    extra_env: Mapping[str, str] | None = None,
) -> Subprocess:
    """``personae serve --port 0`` on loopback with its data in ``data_root`` (fresh), the repo's
    characters, and an OpenAI-compatible backend at ``llm_base_url`` (so no local model loads).
    ``realtime`` sets ``PERSONAE_REALTIME_<NAME>`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        {
            "PERSONAE_CONFIG_DIR": str(data_root),  # no personae.yaml or .env of the caller's
            "PERSONAE_DATA_DIR": str(data_root / "data"),
            "PERSONAE_CHARACTERS_DIR": str(CHARACTERS_DIR),
            "PERSONAE_LLM_BASE_URL": llm_base_url,
            "PERSONAE_LLM_MODEL": "bench-fake",
            "PERSONAE_LLM_API_KEY": "bench",
            "PERSONAE_LOG_LEVEL": log_level,
            "HF_HUB_OFFLINE": "1",
        }
    )
    for name, value in (realtime or {}).items():
        env[f"PERSONAE_REALTIME_{name.upper()}"] = str(value)
    env.update(extra_env or {})
    argv = [sys.executable, "-m", "personae", "serve", "--host", "127.0.0.1", "--port", "0"]
    return Subprocess(argv, name="personae", env=env, cwd=data_root, nofile=nofile)


def fake_llm(*options: str, cwd: Path | None = None) -> Subprocess:
    """``personae fake-llm --port 0`` with ``options`` (see ``personae fake-llm --help``)."""
    argv = [sys.executable, "-m", "personae", "fake-llm", "--port", "0", *options]
    return Subprocess(argv, name="fake-llm", cwd=cwd)


def free_port() -> int:
    """A loopback port free right now, for a server that cannot be told ``--port 0``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- figures --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return float(sorted_values[rank - 1])


def summary_ms(values_ms: Iterable[float]) -> dict[str, float | int]:
    data = sorted(values_ms)
    return {
        "count": len(data),
        "p50": round(percentile(data, 50), 3),
        "p90": round(percentile(data, 90), 3),
        "p99": round(percentile(data, 99), 3),
        "max": round(data[-1], 3) if data else float("nan"),
    }


def print_table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first, *rest = cells
        return "  ".join(
            [str(first).ljust(widths[0])]
            + [str(c).rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def dump_json(figures: Mapping[str, Any]) -> None:
    print(json.dumps(figures, indent=2, sort_keys=False, default=str))


def note(message: str) -> None:
    """Progress goes to stderr, so that --json output on stdout stays parseable."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class LoopLag:
    """How late this process's event loop wakes up (a sleeper's overshoot), sampled every
    ``interval_s``: a busy or stalled client would make the server look slow."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.lag_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> dict[str, float | int]:
        if self._task is not None:
            self._task.cancel()
        return summary_ms(self.lag_ms)

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lag_ms.append((time.perf_counter() - before - self.interval_s) * 1000)
