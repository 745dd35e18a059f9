"""Routing as the composition root wires it from settings, and end to end through the HTTP API:
a client of the OpenAI-compatible endpoint sees the fallback's reply, or one honest error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from personae.app import build_app, build_backends, build_routes
from personae.core.characters import Character
from personae.llm.guard import BackendLimits
from personae.llm.llamacpp import LlamaCppChatModel
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.llm.router import RoutedChatModel
from personae.settings import RetrySettings, RoutesSettings, Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.sqlite_snapshot import sqlite_snapshot
from tests.transports.conftest import make_settings

from .fake_openai_server import Fail, FakeOpenAIServer, Reply
from .routing_rig import fake_servers

ARIA = Character(id="aria", name="Aria")


def openai_backend(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": url, "model": "m", **extra}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    overrides.setdefault("llm", {"base_url": "http://127.0.0.1:9/v1", "model": "legacy"})
    return Settings(data_dir=tmp_path, **overrides)


# --- which backends are built ------------------------------------------------------------------


async def test_the_llm_section_alone_is_the_default_backend(tmp_path: Path) -> None:
    backends = await build_backends(settings_for(tmp_path))
    assert list(backends) == ["openai"]
    model = backends["openai"]
    assert isinstance(model, OpenAICompatChatModel)
    assert model.model == "legacy"

    routes, pool = build_routes(settings_for(tmp_path), backends)
    assert isinstance(routes.default, RoutedChatModel)
    assert routes.default.name == "openai"  # stored replies keep naming the backend
    assert [g.name for g in routes.default.chain] == ["openai"]
    assert list(pool.snapshot().backends) == ["openai"]


async def test_declared_backends_are_built_with_the_default_primary_first(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        backends={
            "spare": openai_backend("http://127.0.0.1:9/v1"),
            "main": openai_backend("http://127.0.0.1:8/v1", context_window=32768),
        },
        routes={"default": ["main", "spare"]},
    )
    backends = await build_backends(settings)
    assert list(backends) == ["main", "spare"]  # the llm backend is not named, so not built
    main = backends["main"]
    assert isinstance(main, OpenAICompatChatModel)
    assert (main.base_url, main.context_window) == ("http://127.0.0.1:8/v1", 32768)


async def test_the_llm_backend_is_built_when_a_route_names_it(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        backends={"main": openai_backend("http://127.0.0.1:8/v1")},
        routes={"default": ["main"], "rules": [{"kinds": ["chat"], "chain": ["openai"]}]},
    )
    assert list(await build_backends(settings)) == ["main", "openai"]


async def test_an_unknown_kind_names_the_backend(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, backends={"odd": {"kind": "nope"}}, routes={"default": ["odd"]}
    )
    with pytest.raises(Exception, match="unknown backend kind 'nope'") as caught:
        await build_backends(settings)
    assert getattr(caught.value, "context", {}).get("backend") == "odd"


# --- routes and limits -------------------------------------------------------------------------


def test_routes_limits_and_retry_come_from_settings(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        backends={
            "main": {
                "kind": "fake",
                "first_token_timeout_s": 5,
                "total_timeout_s": 50,
                "max_concurrency": 3,
                "breaker": {"failure_threshold": 2, "reset_timeout_s": 9},
            },
            "coder": {"kind": "fake"},
        },
        routes={
            "default": ["main", "local"],
            "rules": [{"name": "code", "kinds": ["code"], "chain": ["coder", "main"]}],
            "retry": {"retries": 3, "budget_s": 2.5},
            "cache": {"enabled": True, "max_entries": 7},
        },
    )
    local = LlamaCppChatModel(name="local", model_path=tmp_path / "never-opened.gguf")
    backends = {"main": FakeChatModel(name="main"), "coder": FakeChatModel(name="coder")}
    routes, pool = build_routes(settings, {**backends, "local": local})

    assert pool.guards["main"].limits == BackendLimits(5, 50, 3, 2, 9)
    llm = settings.llm
    assert pool.guards["local"].limits == BackendLimits(
        llm.first_token_timeout_s, llm.total_timeout_s, 1, 5, 30.0
    )  # the local model serves one generation at a time
    assert pool.guards["coder"].limits.max_concurrency is None
    assert routes.select(ARIA, kind="code").name == "code"
    code_chain = routes.for_character(ARIA, kind="code")
    assert isinstance(code_chain, RoutedChatModel)
    assert [g.name for g in code_chain.chain] == ["coder", "main"]
    assert code_chain.retry.retries == 3
    assert code_chain.retry.budget_s == 2.5
    assert pool.cache is not None
    assert pool.cache.max_entries == 7
    # One guard per backend, shared by every chain that names it.
    default = routes.default
    assert isinstance(default, RoutedChatModel)
    assert default.chain[0] is code_chain.chain[1]


def test_test_backends_route_through_the_first_one_by_default(tmp_path: Path) -> None:
    routes, _ = build_routes(settings_for(tmp_path), {"fake": FakeChatModel()})
    assert routes.default.name == "fake"


# --- end to end through the HTTP API -----------------------------------------------------------


@pytest.fixture
def upstreams() -> Iterator[list[FakeOpenAIServer]]:
    with fake_servers(2) as running:
        yield running


def routed_app_settings(tmp_path: Path, primary: str, fallback: str) -> tuple[Settings, Any]:
    """Settings naming two backends, and the app's backends: the routed default chain built
    from them by the composition root's helpers."""
    settings = make_settings(
        tmp_path,
        backends={"primary": openai_backend(primary), "fallback": openai_backend(fallback)},
        routes={"default": ["primary", "fallback"], "retry": {"retries": 0}},
    )
    routes, _ = build_routes(settings, asyncio.run(build_backends(settings)))
    # The app gets the chain as its only backend; without routes of its own it serves it.
    app_settings = settings.model_copy(
        update={"routes": RoutesSettings(retry=RetrySettings(retries=0))}
    )
    return app_settings, build_app(app_settings, backends={"chain": routes.default})


def ask(url: str, *, stream: bool) -> str:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        messages: Any = [{"role": "user", "content": "Where to?"}]
        if not stream:
            reply = client.chat.completions.create(model="aria", user="sam", messages=messages)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(
            model="aria", user="sam", messages=messages, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True])
def test_a_rate_limited_primary_is_invisible_to_the_client(
    tmp_path: Path, upstreams: list[FakeOpenAIServer], stream: bool
) -> None:
    primary, fallback = upstreams
    primary.enqueue(Fail(429, "rate limited"))
    fallback.enqueue(Reply(["Set course", " for Vesta."]))
    settings, app = routed_app_settings(tmp_path, primary.base_url, fallback.base_url)

    with live_server(app) as url:
        assert ask(url, stream=stream) == "Set course for Vesta."

    assert (len(primary.requests), len(fallback.requests)) == (1, 1)
    assert settings.database_path.exists()


@pytest.mark.parametrize("stream", [False, True])
def test_all_backends_down_is_a_503_naming_each_backend_tried(
    tmp_path: Path, upstreams: list[FakeOpenAIServer], stream: bool
) -> None:
    primary, fallback = upstreams
    primary.otherwise = Fail(500, "model crashed")
    fallback.otherwise = Fail(503, "warming up")
    settings, app = routed_app_settings(tmp_path, primary.base_url, fallback.base_url)

    with live_server(app) as url:
        fallback.enqueue(Reply(["first turn"]))
        assert ask(url, stream=False) == "first turn"
        before = sqlite_snapshot(settings.database_path)
        with pytest.raises(openai.APIStatusError) as caught:
            ask(url, stream=stream)

    assert caught.value.status_code == 503
    message = caught.value.message
    assert "primary: HTTP 500: model crashed" in message
    assert "fallback: HTTP 503: warming up" in message
    assert sqlite_snapshot(settings.database_path) == before  # the failed turn left no trace
