"""``/readyz`` reports storage, characters, coordination, backends and every supervised
background task; a crashed task makes the server unready until it runs again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from personae.app.runtime import Runtime, open_runtime
from personae.core.types import InboundMessage
from personae.errors import BackendError, BackendUnavailable
from personae.testing import FakeChatModel
from personae.transports import health
from tests.transports.conftest import make_settings


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = make_settings(tmp_path, llm={"breaker": {"failure_threshold": 1}})
    async with open_runtime(settings, backends={"fake": FakeChatModel()}) as opened:
        yield opened


async def readyz(runtime: Runtime) -> httpx.Response:
    app = FastAPI()
    app.include_router(health.router)
    app.state.gateway = runtime.gateway()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/readyz")


async def test_every_part_is_reported_ready(runtime: Runtime) -> None:
    answer = await readyz(runtime)
    assert answer.status_code == 200
    checks = answer.json()["checks"]
    assert checks == {
        "storage": "ok",
        "characters": "ok",
        "coordination": "ok",
        "backend:fake": "ok",
        "backends": "ok",
        "task:character-watcher": "ok",
        "task:experiments-refresh": "ok",  # re-reads the stored experiments
        "task:reminders": "ok",  # delivers due reminders (docs/skills.md)
        "task:session-sweeper": "ok",
    }


async def test_a_crashed_task_is_restarted_and_reported(runtime: Runtime) -> None:
    runtime.supervisor.initial_backoff_s = 0.2
    runs = 0
    up = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise OSError("the disk went away")
        up.set()
        await asyncio.Event().wait()

    runtime.supervisor.start("flaky", flaky)
    await asyncio.sleep(0.05)
    crashed = await readyz(runtime)
    assert crashed.status_code == 503
    assert crashed.json()["status"] == "degraded"
    assert crashed.json()["checks"]["task:flaky"].startswith(
        "error: crashed (OSError: the disk went away); restart 1 in 0.2s"
    )
    await asyncio.wait_for(up.wait(), 5)
    again = await readyz(runtime)
    assert again.status_code == 200
    assert again.json()["checks"]["task:flaky"] == (
        "ok (restarted 1 times; last error: OSError: the disk went away)"
    )


async def test_no_backend_able_to_answer_is_unready(runtime: Runtime) -> None:
    fake_model = runtime.backends.guards["fake"].model
    assert isinstance(fake_model, FakeChatModel)
    fake_model.enqueue("x", error=BackendUnavailable("down", backend="fake"))  # opens it
    inbound = InboundMessage(user="sam", character_id="aria", text="Hello?")
    with pytest.raises(BackendError):
        async with aclosing(runtime.service.turn(inbound)) as events:
            async for _ in events:
                pass
    answer = await readyz(runtime)
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["backend:fake"].startswith("warning: circuit open")
    assert checks["backends"] == "error: every backend's circuit is open"
