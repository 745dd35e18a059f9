"""OpenAICompatChatModel against a real HTTP server on 127.0.0.1 (tests/llm/fake_openai_server)."""

from __future__ import annotations

import socket

import pytest

from personae.core.types import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ModelChunk,
    Role,
    Usage,
)
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
)
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.plugins.specs import BackendConfig

from .fake_openai_server import Behaviour, Fail, FakeOpenAIServer, Raw, Reply
from .openai_model import make_model

HELLO = ChatRequest(messages=(ChatMessage(Role.USER, "Hello, how are you?"),))


async def collect(model: OpenAICompatChatModel, request: ChatRequest = HELLO) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


async def test_streams_text_then_a_final_chunk_with_usage(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["Hel", "lo", " world"], usage=(11, 3)))

    chunks = await collect(model)

    # Tokens that arrive together may pass on as one chunk (test_openai_transport.py).
    assert "".join(c.text for c in chunks[:-1]) == "Hello world"
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert chunks[-1] == ModelChunk(finish_reason="stop", usage=Usage(11, 3))


async def test_sends_messages_and_generation_params(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    request = ChatRequest(
        messages=(
            ChatMessage(Role.SYSTEM, "You are Mira."),
            ChatMessage(Role.USER, "Hi", name="Mr Smith"),
            ChatMessage(Role.ASSISTANT, "Hello!"),
            ChatMessage(Role.USER, "Bake me a cake"),
        ),
        params=GenerationParams(
            max_tokens=32, temperature=0.5, top_p=0.9, stop=("\nUser:",), seed=7
        ),
    )

    await collect(model, request)

    [received] = server.requests
    body = received["body"]
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "system", "content": "You are Mira."},
        {"role": "user", "content": "Hi", "name": "Mr_Smith"},  # OpenAI forbids spaces in names
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bake me a cake"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (32, 0.5, 0.9)
    assert body["stop"] == ["\nUser:"]
    assert body["seed"] == 7
    assert received["headers"]["authorization"] == "Bearer sk-secret-key"


async def test_leaves_out_an_empty_stop_list_and_a_missing_seed(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    await collect(model)

    body = server.requests[0]["body"]
    assert "stop" not in body
    assert "seed" not in body


async def test_estimates_usage_when_the_server_sends_none(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["Fine", ", thanks"], usage=None, finish_reason="length"))

    chunks = await collect(model)

    expected = Usage(
        model.count_tokens(HELLO.messages[0].content), model.count_tokens("Fine, thanks")
    )
    assert chunks[-1] == ModelChunk(finish_reason="length", usage=expected)


@pytest.mark.parametrize(
    ("behaviour", "error_type", "status"),
    [
        (Fail(500, "model crashed"), BackendUnavailable, 500),
        (Fail(503, "warming up"), BackendUnavailable, 503),
        (Fail(429, "slow down"), BackendUnavailable, 429),
        (Fail(400, "stop must be a list"), BackendProtocolError, 400),
        (Fail(404, "no such model"), BackendProtocolError, 404),
    ],
)
async def test_maps_http_errors(
    server: FakeOpenAIServer,
    model: OpenAICompatChatModel,
    behaviour: Fail,
    error_type: type[BackendError],
    status: int,
) -> None:
    server.enqueue(behaviour)

    with pytest.raises(error_type) as caught:
        await collect(model)

    assert caught.value.backend == "upstream"
    assert "'upstream'" in str(caught.value)
    assert behaviour.message in str(caught.value)
    assert caught.value.context["status"] == status
    assert len(server.requests) == 1  # no retries at this layer


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(Raw(b"data: {this is not json\n\n"), id="bad-json"),
        pytest.param(Raw(b"<html>upstream proxy error</html>", "text/html"), id="html"),
        pytest.param(
            Raw(b'data: {"id": "x", "object": "chat.completion.chunk"}\n\n'), id="no-choices"
        ),
        pytest.param(Raw(b'data: {"choices": [{"index": 0, "delta": 5}]}\n\n'), id="bad-delta"),
        pytest.param(Reply(plain_json=True), id="plain-json-instead-of-stream"),
    ],
)
async def test_maps_unusable_answers_to_protocol_errors(
    server: FakeOpenAIServer, model: OpenAICompatChatModel, behaviour: Behaviour
) -> None:
    server.enqueue(behaviour)

    with pytest.raises(BackendProtocolError) as caught:
        await collect(model)

    assert caught.value.backend == "upstream"


async def test_a_stream_that_breaks_midway_is_unavailable_after_the_first_tokens(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["one", " two", " three", " four"], break_after=2))
    received: list[str] = []

    with pytest.raises(BackendUnavailable) as caught:
        async for chunk in model.stream(HELLO):
            received.append(chunk.text)

    assert "".join(received) == "one two"
    assert caught.value.backend == "upstream"


async def test_a_slow_first_token_times_out(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(first_token_delay_s=3.0))

    async with make_model(server.base_url, timeout_s=0.3) as slow:
        with pytest.raises(BackendTimeout) as caught:
            await collect(slow)

    assert caught.value.backend == "upstream"


async def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with make_model(f"http://127.0.0.1:{port}/v1") as orphan:
        with pytest.raises(BackendUnavailable) as caught:
            await collect(orphan)

    assert caught.value.backend == "upstream"


async def test_stopping_early_closes_the_stream_and_the_model_stays_usable(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["a", "b", "c", "d"]))

    stream = model.stream(HELLO)
    async for chunk in stream:
        assert chunk.text.startswith("a")
        break
    await stream.aclose()

    chunks = await collect(model)
    assert chunks[-1].finish_reason == "stop"
    assert len(server.requests) == 2


async def test_streaming_before_open_is_a_programming_error(server: FakeOpenAIServer) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await collect(make_model(server.base_url))


def test_the_api_key_stays_out_of_repr() -> None:
    model = make_model("http://127.0.0.1:9/v1")
    assert "sk-secret-key" not in repr(model)


def test_from_config() -> None:
    config = BackendConfig(
        name="vllm",
        kind="openai",
        model="qwen",
        base_url="http://127.0.0.1:8000/v1",
        options={"context_window": "32768"},
    )
    model = OpenAICompatChatModel.from_config(config)
    assert (model.name, model.model, model.base_url) == ("vllm", "qwen", config.base_url)
    assert model.context_window == 32768

    with pytest.raises(ConfigurationError, match="model name"):
        OpenAICompatChatModel.from_config(BackendConfig(name="x", kind="openai"))
