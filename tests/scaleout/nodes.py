"""Personae nodes as real processes (``python -m personae serve``) sharing one Redis and one
database, as several machines behind a load balancer would; the LLM is a fake OpenAI server
in the test process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.serve_process import wait_for_url

REPO = Path(__file__).parents[2]


@dataclass
class Node:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, leases left to expire."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def ready(self) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(self.url + "/readyz")

    async def get(self, path: str, **params: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.url + path, params=params)


def node_env(
    tmp_path: Path, *, redis_url: str, backend_url: str, name: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_LLM_BASE_URL=backend_url,
        PERSONAE_LLM_MODEL="fake-model",
        PERSONAE_LLM_API_KEY="sk-fake-not-secret",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),  # one database for every node
        PERSONAE_CHARACTERS_DIR=str(shared_characters(tmp_path)),  # one folder, as on a volume
        PERSONAE_CONFIG_DIR=str(tmp_path),
        PERSONAE_WATCH_CHARACTERS="false",  # as on a network volume: no file events
        PERSONAE_COORDINATION_BACKEND="redis",
        PERSONAE_COORDINATION_REDIS_URL=redis_url,
        PERSONAE_COORDINATION_NODE=name,
        PERSONAE_COORDINATION_LOCK_TTL_S="2",
        PERSONAE_COORDINATION_VISIBILITY_TIMEOUT_S="3",
    )
    env.update(extra)
    return env


def shared_characters(tmp_path: Path) -> Path:
    """The sample characters, copied once into the test's folder (uploads write there)."""
    folder = tmp_path / "characters"
    if not folder.exists():
        shutil.copytree(REPO / "characters", folder)
    return folder


@contextmanager
def run_node(tmp_path: Path, name: str, env: dict[str, str], *args: str) -> Iterator[Node]:
    log = tmp_path / f"node-{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "personae", "serve", "--port", "0", *args],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Node(name, wait_for_url(log, process), process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
