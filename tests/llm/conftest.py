"""Fixtures of the OpenAI-compatible client tests: a fake server on loopback, and the client
pointed at it (``openai_model.make_model``). A module with a model of its own (the local
llama.cpp one, the tool-calling one) defines its own ``model`` fixture, which wins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from personae.llm.openai_compat import OpenAICompatChatModel

from .fake_openai_server import FakeOpenAIServer
from .openai_model import make_model


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[OpenAICompatChatModel]:
    async with make_model(server.base_url) as opened:
        yield opened
