"""OpenAICompatEmbedder against a real HTTP server on 127.0.0.1 that plays /v1/embeddings."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from personae.embedders.openai_compat import OpenAICompatEmbedder
from personae.errors import BackendProtocolError, BackendUnavailable, InvalidInput
from tests.live_server import live_server


@dataclass
class Upstream:
    """Answers each request with the next scripted body (or a healthy answer)."""

    base_url: str = ""
    script: list[tuple[int, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    dimension: int = 3


def healthy(inputs: list[str], dimension: int) -> dict[str, Any]:
    # Sent in reverse order: the client must sort by index.
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": [float(len(t)), 1.0] + [0.0] * (dimension - 2),
        }
        for i, t in enumerate(inputs)
    ]
    return {
        "object": "list",
        "model": "m",
        "data": data[::-1],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(body)
        if state.script:
            status, answer = state.script.pop(0)
            return JSONResponse(answer, status_code=status)
        return JSONResponse(healthy(body["input"], state.dimension))

    with live_server(app) as url:
        state.base_url = f"{url}/v1"
        yield state


def embedder(upstream: Upstream, **kwargs: Any) -> OpenAICompatEmbedder:
    return OpenAICompatEmbedder(model="m", base_url=upstream.base_url, **kwargs)


async def test_embeds_in_batches_in_order_and_normalised(upstream: Upstream) -> None:
    async with embedder(upstream, dimension=3, batch_size=2) as model:
        vectors = await model.embed(["a", "bbb", "cc"])
    assert [len(body["input"]) for body in upstream.requests] == [2, 1]
    assert [v[0] / v[1] for v in vectors] == pytest.approx([1.0, 3.0, 2.0])  # input order
    assert all(math.isclose(math.hypot(*v), 1.0) for v in vectors)


async def test_learns_the_dimension_when_not_told(upstream: Upstream) -> None:
    upstream.dimension = 5
    async with embedder(upstream) as model:
        assert model.dimension == 5
        assert len((await model.embed(["x"]))[0]) == 5


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (503, {"error": {"message": "overloaded"}}, BackendUnavailable),
        (429, {"error": {"message": "slow down"}}, BackendUnavailable),
        (400, {"error": {"message": "input too long"}}, BackendProtocolError),
        (200, {"object": "list", "data": []}, BackendProtocolError),  # wrong count
        (200, healthy(["a"], 7), BackendProtocolError),  # wrong dimension
        (
            200,
            {"object": "list", "data": [{"index": 0, "embedding": "nope"}]},
            BackendProtocolError,
        ),
        (
            200,
            healthy(["a"], 3) | {"data": [{"index": 0, "embedding": [0.0, 0.0, 0.0]}]},
            BackendProtocolError,
        ),
    ],
)
async def test_failures_are_backend_errors_and_return_nothing(
    upstream: Upstream, status: int, body: Any, error: type[Exception]
) -> None:
    upstream.script.append((status, body))
    async with embedder(upstream, dimension=3, name="emb") as model:
        with pytest.raises(error, match="emb"):
            await model.embed(["a"])
        assert len(await model.embed(["a"])) == 1  # the next call is fine


async def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAICompatEmbedder(model="m", base_url=f"http://127.0.0.1:{port}/v1", dimension=3)
    async with model:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            await model.embed(["a"])


async def test_blank_text_is_refused_before_any_request(upstream: Upstream) -> None:
    async with embedder(upstream, dimension=3) as model:
        with pytest.raises(InvalidInput):
            await model.embed(["fine", "  "])
    assert upstream.requests == []
