"""Waiting for a ``personae serve`` process to say where it listens."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

MARKER = "personae listening on "


def wait_for_url(log: Path, process: subprocess.Popen[bytes], *, timeout_s: float = 60) -> str:
    """The URL the server printed to ``log``; fails with the log if it exits or never says."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(MARKER):
                return line.removeprefix(MARKER).strip()
        if process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"the server did not say where it listens:\n{log.read_text()}")
