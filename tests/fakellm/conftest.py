from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from personae.fakellm import FakeLLM, FakeLLMConfig
from tests.live_server import live_server

FakeServer = Callable[[FakeLLMConfig], AbstractContextManager[tuple[str, FakeLLM]]]


@pytest.fixture
def fake_server() -> FakeServer:
    """A fake backend on a real uvicorn server: ``with fake_server(config) as (url, fake)``."""

    @contextmanager
    def start(config: FakeLLMConfig) -> Iterator[tuple[str, FakeLLM]]:
        fake = FakeLLM(config)
        with live_server(fake) as url:  # type: ignore[arg-type]  # any ASGI app serves
            yield url, fake

    return start
