from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.fake_openai_server import FakeOpenAIServer
from tests.redis_server import RedisServer


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own (some tests stop and restart it)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backend() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
