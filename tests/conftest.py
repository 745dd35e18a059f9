from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from personae.embedders.sentence_transformers import SentenceTransformerEmbedder
from personae.llm.packaged import packaged_model_path
from tests.redis_server import RedisServer


class ManualClock:
    """A monotonic clock that moves only when a test moves it (``clock.now += 5``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


_RATE_TEST_SPAN_S = 12.0  # the longest rate limit test takes a few seconds; ample margin


@pytest.fixture
def one_rate_window() -> None:
    """Start a rate limit test well inside one wall-clock minute. The sliding window counter
    (``limits``) floors the weighted count of the previous minute, so just after a minute
    boundary a budget of N admits N + 1; a test that spans the boundary would see that."""
    into_minute = time.time() % 60
    if into_minute > 60 - _RATE_TEST_SPAN_S:
        time.sleep(60 - into_minute + 0.1)


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged Gemma 3 270M GGUF, assembled once per test session. ``make test`` installs
    the ``local`` extra, so a missing package is a failure here, never a skip."""
    return packaged_model_path(tmp_path_factory.mktemp("personae-data"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # llama_cpp._utils opens two /dev/null files at import and never closes them; with
    # warnings as errors, interpreter exit then prints ResourceWarnings that are not ours.
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


@pytest.fixture(scope="session")
def minilm() -> Iterator[SentenceTransformerEmbedder]:
    """The packaged all-MiniLM-L6-v2 embedder, loaded once per test session. Its worker thread
    is not tied to an event loop, so every test's loop can use it."""
    embedder = SentenceTransformerEmbedder()
    asyncio.run(embedder.open())
    yield embedder
    asyncio.run(embedder.close())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server on a loopback port for the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
