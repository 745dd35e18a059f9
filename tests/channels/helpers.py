"""Shared pieces of the channel tests: settings, a live Personae with the fake model, waiting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from personae.app import build_app
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"


def make_settings(tmp_path: Path, adapters: dict[str, Any], **channels: Any) -> Settings:
    channels.setdefault(
        "outbox", {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "breaker_reset_s": 0.5}
    )
    channels.setdefault(
        "reconnect", {"initial_s": 0.05, "max_s": 0.2, "max_attempts": 10, "window_s": 1.0}
    )
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=REPO_CHARACTERS,
        watch_characters=False,
        routes={"retry": {"retries": 0}},  # type: ignore[arg-type]
        channels={"adapters": adapters, **channels},  # type: ignore[arg-type]
    )


@dataclass
class Personae:
    url: str
    model: FakeChatModel
    settings: Settings


@contextmanager
def running(settings: Settings, model: FakeChatModel | None = None) -> Iterator[Personae]:
    model = model or FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Personae(url, model, settings)


async def eventually(check: Callable[[], Any], *, timeout_s: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_s} s: {check}")
        await asyncio.sleep(0.02)


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """``app`` on a fixed loopback port (to stop a fake platform and bring it back at the
    same address); ``tests.live_server`` picks a free port instead."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"fake-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
