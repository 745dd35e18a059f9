"""OpenAICompatChatModel's HTTP transport (aiohttp) against real servers on 127.0.0.1: line and
event limits, timeouts of each kind, streams that break, compressed answers, a cancelled turn
closing its backend stream, proxies from the environment, and closing with streams in flight
without a warning (pytest turns any ResourceWarning into an error)."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
import socket
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.app import build_app
from personae.core.events import MessageDelta
from personae.core.types import ChatMessage, ChatRequest, InboundMessage, ModelChunk, Role
from personae.errors import BackendProtocolError, BackendTimeout, BackendUnavailable
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.llm.sse import MAX_EVENT_BYTES
from tests.test_serve import self_signed_pair
from tests.transports.conftest import make_settings

from .fake_openai_server import FakeOpenAIServer, Hang, Raw, Reply
from .openai_model import make_model

CHARACTER = "aria"
HELLO = ChatRequest(messages=(ChatMessage(Role.USER, "Hello, how are you?"),))


async def collect(model: OpenAICompatChatModel) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(HELLO)]


def event(content: str | None = None, *, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def sse(*contents: str) -> bytes:
    """A whole stream: the contents, a finish reason, ``[DONE]``."""
    return b"".join(event(c) for c in contents) + event(finish="stop") + b"data: [DONE]\n\n"


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


# --- limits on what a server sends ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"data: " + b"x" * (MAX_EVENT_BYTES + 10) + b"\n\n", id="one-long-line"),
        pytest.param(b"data: " + b"x" * (MAX_EVENT_BYTES + 10), id="a-line-never-ended"),
    ],
)
async def test_an_over_long_line_is_refused_and_the_model_stays_usable(
    server: FakeOpenAIServer, model: OpenAICompatChatModel, body: bytes
) -> None:
    server.enqueue(Raw(body))

    with pytest.raises(BackendProtocolError, match=f"a line of more than {MAX_EVENT_BYTES} bytes"):
        await collect(model)

    assert (await collect(model))[-1].finish_reason == "stop"


async def test_an_event_of_many_lines_past_the_limit_is_refused(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    line = b"data: " + b"y" * 60_000 + b"\n"
    server.enqueue(Raw(line * (MAX_EVENT_BYTES // 60_000 + 2)))  # never a blank line

    with pytest.raises(BackendProtocolError, match="an event of more than"):
        await collect(model)


async def test_a_long_line_within_the_limit_is_read_whole(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    # Past aiohttp's own default line limit (128 KiB), within the event limit.
    long_text = "z" * 300_000
    server.enqueue(Raw(sse(long_text, "!")))

    chunks = await collect(model)

    assert "".join(c.text for c in chunks[:-1]) == long_text + "!"


async def test_crlf_line_endings_are_read_like_lf(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Raw(sse("Hel", "lo").replace(b"\n", b"\r\n")))

    chunks = await collect(model)

    assert "".join(c.text for c in chunks[:-1]) == "Hello"
    assert chunks[-1].finish_reason == "stop"


# --- read as it arrives: tokens that come together pass on together --------------------------


def tool_event(arguments: str) -> bytes:
    call = {"index": 0, "id": "call_1", "function": {"name": "roll", "arguments": arguments}}
    chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def test_text_that_arrives_in_one_read_is_one_chunk_and_the_rest_stays_apart(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    # One write: a server that got ahead of us (or a client that fell behind). The text runs
    # merge; a tool call piece, the text after it and the end keep their places.
    body = event("Hel") + event("lo") + tool_event('{"n":') + tool_event(" 2}") + event("!")
    server.enqueue(Raw(body + event(finish="stop") + b"data: [DONE]\n\n"))

    chunks = await collect(model)

    assert [(c.text, len(c.tool_calls)) for c in chunks[:-1]] == [
        ("Hello", 0),
        ("", 1),
        ("", 1),
        ("!", 0),
    ]
    assert chunks[-1].finish_reason == "stop"


async def test_tokens_that_arrive_apart_pass_on_one_by_one(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["one", " two", " three"], token_delay_s=0.1))

    chunks = await collect(model)

    assert [c.text for c in chunks[:-1]] == ["one", " two", " three"]


# --- compressed and chunked answers ----------------------------------------------------------


async def test_a_gzip_stream_is_decompressed(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Raw(gzip.compress(sse("Hel", "lo")), headers={"Content-Encoding": "gzip"}))

    chunks = await collect(model)

    assert "".join(c.text for c in chunks[:-1]) == "Hello"
    assert "gzip" in server.requests[0]["headers"]["accept-encoding"]


async def test_a_gzip_completion_is_decompressed(server: FakeOpenAIServer) -> None:
    completion = {
        "choices": [{"index": 0, "message": {"content": "Hi!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2},
    }
    body = gzip.compress(json.dumps(completion).encode())
    server.enqueue(Raw(body, "application/json", headers={"Content-Encoding": "gzip"}))

    async with make_model(server.base_url, stream=False) as whole:
        chunks = await collect(whole)

    assert "".join(c.text for c in chunks) == "Hi!"
    assert chunks[-1].finish_reason == "stop"


async def test_a_broken_gzip_stream_is_a_broken_stream(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Raw(b"not gzip at all", headers={"Content-Encoding": "gzip"}))

    with pytest.raises(BackendUnavailable, match="the stream broke off"):
        await collect(model)


async def test_the_body_is_utf8_json_with_a_length(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    text = "Grüße aus Köln 🌍"
    request = ChatRequest(messages=(ChatMessage(Role.USER, text),))

    [_ async for _ in model.stream(request)]

    [received] = server.requests
    assert received["body"]["messages"] == [{"role": "user", "content": text}]
    assert received["headers"]["content-type"] == "application/json"
    assert int(received["headers"]["content-length"]) > len(text)  # sized, not chunked
    assert "transfer-encoding" not in received["headers"]
    assert received["headers"]["authorization"] == "Bearer sk-secret-key"


# --- timeouts and broken connections ---------------------------------------------------------


async def test_a_server_that_stalls_midway_hits_the_read_timeout(
    server: FakeOpenAIServer,
) -> None:
    server.enqueue(Reply(["one", " two", " three"], token_delay_s=5.0))
    received: list[str] = []

    started = time.monotonic()
    async with make_model(server.base_url, timeout_s=0.3) as slow:
        with pytest.raises(BackendTimeout, match=r"waited 0\.3 s for the next token"):
            async for chunk in slow.stream(HELLO):
                received.append(chunk.text)

    assert received == ["one"]
    assert time.monotonic() - started < 3


async def test_a_slow_first_token_waits_for_an_answer(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(first_token_delay_s=5.0))

    async with make_model(server.base_url, timeout_s=0.3) as slow:
        with pytest.raises(BackendTimeout, match=r"waited 0\.3 s for an answer"):
            await collect(slow)


async def test_a_server_that_never_answers_hits_the_read_timeout(
    server: FakeOpenAIServer,
) -> None:
    server.enqueue(Hang(5.0))

    async with make_model(server.base_url, timeout_s=0.3) as slow:
        with pytest.raises(BackendTimeout, match=r"waited 0\.3 s for an answer"):
            await collect(slow)


async def test_a_connection_that_is_never_accepted_is_a_connect_timeout() -> None:
    # A listener whose backlog is full: the kernel drops further SYNs, so connect() hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex(address)
        try:
            url = f"http://127.0.0.1:{address[1]}/v1"
            async with make_model(url, connect_timeout_s=0.3) as stuck:
                started = time.monotonic()
                with pytest.raises(BackendTimeout, match=r"could not connect within 0\.3 s"):
                    await collect(stuck)
            assert time.monotonic() - started < 3
        finally:
            for filler in fillers:
                filler.close()


async def test_a_closed_port_cannot_be_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with make_model(f"http://127.0.0.1:{port}/v1") as orphan:
        with pytest.raises(BackendUnavailable, match=f"cannot reach http://127.0.0.1:{port}/v1"):
            await collect(orphan)


async def test_a_stream_cut_midway_broke_off(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["one", " two", " three"], break_after=1))
    received: list[str] = []

    with pytest.raises(BackendUnavailable, match="the stream broke off"):
        async for chunk in model.stream(HELLO):
            received.append(chunk.text)

    assert received == ["one"]
    assert (await collect(model))[-1].finish_reason == "stop"  # a fresh connection


async def test_a_body_shorter_than_its_length_broke_off(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    body = event("one")
    server.enqueue(Raw(body, headers={"Content-Length": str(len(body) + 500)}))

    with pytest.raises(BackendUnavailable, match="the stream broke off"):
        await collect(model)


# --- cancellation and closing -----------------------------------------------------------------


async def test_a_cancelled_turn_closes_the_backend_stream(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["first", " second", " third"], token_delay_s=10.0))
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in model.stream(HELLO):
            if chunk.text:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await eventually(lambda: server.abandoned == 1)  # the server saw its client go
    assert (await collect(model))[-1].finish_reason == "stop"


async def test_stopping_early_closes_the_backend_stream(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(Reply(["a", "b", "c"], token_delay_s=10.0))

    stream = model.stream(HELLO)
    assert (await anext(stream)).text == "a"
    await stream.aclose()

    await eventually(lambda: server.abandoned == 1)


async def test_closing_with_streams_in_flight_ends_them_without_a_warning(
    server: FakeOpenAIServer,
) -> None:
    server.otherwise = Reply(["a", "b"], token_delay_s=10.0)
    model = make_model(server.base_url)
    started = asyncio.Event()
    outcomes: list[BaseException | None] = []

    async def consume() -> None:
        try:
            async for _ in model.stream(HELLO):
                started.set()
        except BackendUnavailable as exc:
            outcomes.append(exc)

    async with model:
        tasks = [asyncio.create_task(consume()) for _ in range(3)]
        await eventually(lambda: len(server.requests) == 3)
        await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    gc.collect()  # an unclosed session, connector or response would warn here

    assert len(outcomes) == 3
    assert all("the stream broke off" in str(exc) for exc in outcomes)


async def test_a_model_opens_and_closes_again(server: FakeOpenAIServer) -> None:
    model = make_model(server.base_url)
    for _ in range(2):
        async with model:
            assert (await collect(model))[-1].finish_reason == "stop"
        with pytest.raises(RuntimeError, match="not open"):
            await collect(model)
    gc.collect()


# --- proxies from the environment ------------------------------------------------------------


async def test_a_proxy_named_in_the_environment_is_used(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = server.base_url.removesuffix("/v1").replace("http://", "http://ann:s3cret@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    # Nothing listens at this name: only the proxy can answer.
    async with make_model("http://backend.invalid/v1") as proxied:
        chunks = await collect(proxied)

    assert chunks[-1].finish_reason == "stop"
    assert server.requests[0]["headers"]["host"] == "backend.invalid"
    credentials = base64.b64encode(b"ann:s3cret").decode()
    assert server.requests[0]["headers"]["proxy-authorization"] == f"Basic {credentials}"


async def test_a_proxy_never_gets_the_api_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.base_url.removesuffix("/v1"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async with make_model("http://backend.invalid/v1") as proxied:
        await collect(proxied)

    headers = server.requests[0]["headers"]
    assert headers["authorization"] == "Bearer sk-secret-key"  # for the backend
    assert "proxy-authorization" not in headers


async def test_no_proxy_exempts_a_host(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # would refuse the connection
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async with make_model(server.base_url) as direct:
        assert (await collect(direct))[-1].finish_reason == "stop"


# --- the whole app shutting down with backend streams in flight ------------------------------


async def test_the_app_shuts_down_with_backend_streams_in_flight(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.otherwise = Reply(["a", " b", " c"], token_delay_s=10.0)
    backend = make_model(server.base_url)
    app = build_app(make_settings(tmp_path), backends={"upstream": backend})
    delivered = asyncio.Event()
    ended: list[BaseException | None] = []

    async def turn(user: str) -> None:
        inbound = InboundMessage(user=user, character_id=CHARACTER, text="Tell me a story.")
        try:
            async with aclosing(gateway.service.turn(inbound)) as events:
                async for event in events:
                    if isinstance(event, MessageDelta):
                        delivered.set()
            ended.append(None)
        except BaseException as exc:
            ended.append(exc)
            raise

    async with app.router.lifespan_context(app):
        gateway = app.state.gateway
        tasks = [asyncio.create_task(turn(f"u{i}")) for i in range(2)]
        await asyncio.wait_for(delivered.wait(), 10)
        await eventually(lambda: len(server.requests) == 2)
    # The runtime closed the backend under the two turns: each ends, none hangs, and the
    # backend sees both streams go. (How a turn settles then is the runtime's business.)
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    gc.collect()  # an unclosed session, connector or response would warn here

    assert len(ended) == 2
    assert all(exc is not None for exc in ended)  # neither turn completed
    await eventually(lambda: server.abandoned == 2)


# --- HTTPS: the certificates trusted ---------------------------------------------------------


async def test_https_trusts_the_certificates_named_by_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = self_signed_pair(tmp_path)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with FakeOpenAIServer(tls=(cert_file, key_file)) as tls_server:
        assert tls_server.base_url.startswith("https://")

        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        async with make_model(tls_server.base_url) as trusting:
            assert (await collect(trusting))[-1].finish_reason == "stop"

        monkeypatch.delenv("SSL_CERT_FILE")  # certifi's bundle does not know this one
        async with make_model(tls_server.base_url) as wary:
            with pytest.raises(BackendUnavailable, match="cannot reach") as caught:
                await collect(wary)
        assert "certificate" in str(caught.value).lower()
