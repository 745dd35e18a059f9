"""``personae serve --workers N``: refused without shared coordination, several processes on
one port with it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from personae.cli import cli
from tests.llm.fake_openai_server import FakeOpenAIServer, Reply
from tests.redis_server import RedisServer, free_port
from tests.scaleout.nodes import node_env
from tests.transports.ws_client import WsClient, delta_text, seqs_covered


def test_workers_without_redis_refuse_to_start_and_say_why(tmp_path: Path) -> None:
    (tmp_path / "personae.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--config-dir", str(tmp_path)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "coordination: redis" in said
    assert not (tmp_path / "data").exists()  # nothing was started


@dataclass
class Workers:
    url: str
    log: Path


@pytest.fixture
def workers(tmp_path: Path, redis: RedisServer, backend: FakeOpenAIServer) -> Iterator[Workers]:
    port = free_port()
    env = node_env(tmp_path, redis_url=redis.url, backend_url=backend.base_url, name="")
    env.pop("PERSONAE_COORDINATION_NODE")  # each worker names itself (host and pid)
    log = tmp_path / "workers.log"
    command = [sys.executable, "-m", "personae", "serve", "--workers", "2", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        # Ready: one worker answers; both up: each has said it joined the coordination.
        while not ready(url) or log.read_text().count("coordination on redis") < 2:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"never ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield Workers(url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
async def test_two_workers_on_one_port_serve_conversations_together(
    workers: Workers, backend: FakeOpenAIServer
) -> None:
    backend.otherwise = Reply(["One", " two", " three."], token_delay_s=0.02)
    clients = [(await WsClient.open(workers.url, user=f"user{i}"))[0] for i in range(8)]
    sent = [
        (await c.request("message.send", {"character": "aria", "text": "Count."}))["result"]
        for c in clients
    ]
    for client, result in zip(clients, sent, strict=True):
        frames = await client.events_until("message.done", conversation=result["conversation"])
        assert delta_text(frames) == "One two three."
        covered = seqs_covered(frames)
        assert covered == list(range(1, covered[-1] + 1))
        await client.close()
    said = await asyncio.to_thread(workers.log.read_text)
    assert said.count("Started server process") == 2, said  # two workers, one port
