"""Admission control for ``POST /v1/chat/completions`` on a live uvicorn server: the same
bounds as WebSocket turns (one ``Admission`` per process), 503 + Retry-After past them, and no
slot lost to a client that hangs up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.requests import ClientDisconnect

from personae.app import build_app
from personae.core.admission import Admission
from personae.testing import FakeChatModel
from personae.transports.openai_api import HeldStreamingResponse
from tests.live_server import live_server
from tests.observability.conftest import Scrape
from tests.transports.conftest import Server, make_settings
from tests.transports.ws_client import WsClient, delta_text

REPLY = "a slow and steady reply"
ARIA = {"character": "aria", "text": "Where to, navigator?"}


@contextmanager
def bounded(tmp_path: Path, **realtime: float) -> Iterator[Server]:
    settings = make_settings(tmp_path, realtime=realtime)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


@pytest.fixture
def two_plus_four(tmp_path: Path) -> Iterator[Server]:
    """2 turns at a time, 4 in line; the line is never waited out in these tests."""
    with bounded(tmp_path, max_concurrent_turns=2, max_queued_turns=4, enqueue_timeout_s=30) as s:
        yield s


@pytest.fixture
def two_no_line(tmp_path: Path) -> Iterator[Server]:
    with bounded(tmp_path, max_concurrent_turns=2, max_queued_turns=0) as s:
        yield s


def openai_client(server: Server) -> openai.AsyncOpenAI:
    # No retries: a 503 must reach the test as it reached the client.
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def body(user: str, *, stream: bool = False, text: str = "Where to?") -> dict[str, Any]:
    return {
        "model": "aria",
        "user": user,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def ascrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    return Scrape.parse(response.text)


async def until_idle(url: str, wait_s: float = 10) -> Scrape:
    """The scrape that shows no turn holding a slot (a disconnect is noticed asynchronously)."""
    async with asyncio.timeout(wait_s):
        while True:
            now = await ascrape(url)
            if now.value("personae_turns_running") == 0:
                return now
            await asyncio.sleep(0.05)


async def until_requests(model: FakeChatModel, count: int, wait_s: float = 10) -> None:
    """Until ``count`` turns reached the model (so they hold their slots)."""
    async with asyncio.timeout(wait_s):
        while True:  # the model runs on the server's thread: nothing to await but time
            if len(model.requests) >= count:
                return
            await asyncio.sleep(0.01)


def assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("overloaded_error", "overloaded")


async def test_twenty_at_once_give_the_bounds_completions_and_the_rest_503(
    two_plus_four: Server,
) -> None:
    for _ in range(20):  # slow enough that none ends while the 20 arrive
        two_plus_four.model.enqueue(REPLY, first_token_delay_s=1.0, delay_s=0.05)
    async with openai_client(two_plus_four) as client:
        calls = [
            client.chat.completions.create(
                model="aria", user=f"u{i}", messages=[{"role": "user", "content": "Where to?"}]
            )
            for i in range(20)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
    completed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert (len(completed), len(refused)) == (6, 14), results
    assert all(c.choices[0].message.content == REPLY for c in completed)
    for error in refused:
        assert error.status_code == 503
        assert int(error.response.headers["retry-after"]) >= 1
        assert error.response.json()["error"]["code"] == "overloaded"
    assert len(two_plus_four.model.requests) == 6  # a refused request never reached the model
    after = await until_idle(two_plus_four.url)
    assert after.value("personae_rejections_total", reason="overloaded") == 14
    assert after.value("personae_turns_queued") == 0


async def test_a_request_in_line_past_the_enqueue_timeout_is_a_503_not_a_hang(
    tmp_path: Path,
) -> None:
    limits = {"max_concurrent_turns": 1, "max_queued_turns": 4, "enqueue_timeout_s": 0.5}
    with bounded(tmp_path, **limits) as server:
        server.model.enqueue(REPLY, first_token_delay_s=3.0)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            running = asyncio.create_task(http.post("/v1/chat/completions", json=body("a")))
            await until_requests(server.model, 1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            waited = await http.post("/v1/chat/completions", json=body("b"))
            elapsed = loop.time() - started
            assert_overloaded(waited)
            assert "waited too long" in waited.json()["error"]["message"]
            assert 0.4 <= elapsed < 2.5  # refused at the enqueue timeout, well before the turn
            first = await running
        assert first.status_code == 200
        assert first.json()["choices"][0]["message"]["content"] == REPLY
        assert len(server.model.requests) == 1  # the refused one never reached the model


async def test_http_refusals_do_not_take_slots_from_bad_requests(two_no_line: Server) -> None:
    """Validation comes before admission: with every slot taken, a bad request still gets its
    own error, not a 503, and a good one gets the 503."""
    for _ in range(2):
        two_no_line.model.enqueue(REPLY, first_token_delay_s=2.0)
    async with httpx.AsyncClient(base_url=two_no_line.url, timeout=30) as http:
        running = [
            asyncio.create_task(http.post("/v1/chat/completions", json=body(f"u{i}")))
            for i in range(2)
        ]
        await until_requests(two_no_line.model, 2)
        unknown = await http.post("/v1/chat/completions", json={**body("c"), "model": "nobody"})
        empty = await http.post("/v1/chat/completions", json=body("c", text="   "))
        assert (unknown.status_code, empty.status_code) == (404, 400)
        assert_overloaded(await http.post("/v1/chat/completions", json=body("c")))
        assert [r.status_code for r in await asyncio.gather(*running)] == [200, 200]


async def test_websocket_and_http_turns_share_one_bound(tmp_path: Path) -> None:
    limits = {"max_concurrent_turns": 2, "max_queued_turns": 1, "enqueue_timeout_s": 30}
    with bounded(tmp_path, **limits) as server:
        for _ in range(3):
            server.model.enqueue(REPLY, first_token_delay_s=1.0, delay_s=0.05)
        sockets = [(await WsClient.open(server.url, user=f"ws{i}"))[0] for i in range(2)]
        accepted = [await s.request("message.send", ARIA) for s in sockets]
        assert all(a["ok"] for a in accepted)  # both slots taken by WebSocket turns
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            posts = [http.post("/v1/chat/completions", json=body(f"h{i}")) for i in range(3)]
            answers = await asyncio.gather(*posts)
        ok = [a for a in answers if a.status_code == 200]
        assert len(ok) == 1  # the one in line waited for a WebSocket turn to end
        assert ok[0].json()["choices"][0]["message"]["content"] == REPLY
        for refused in (a for a in answers if a.status_code != 200):
            assert_overloaded(refused)
        for socket, answer in zip(sockets, accepted, strict=True):
            frames = await socket.events_until(
                "message.done", conversation=answer["result"]["conversation"]
            )
            assert delta_text(frames) == REPLY
            await socket.close()


async def test_http_streams_hold_slots_that_websocket_sends_are_refused(
    two_no_line: Server,
) -> None:
    for _ in range(3):
        two_no_line.model.enqueue(REPLY, delay_s=0.3)
    socket, _ = await WsClient.open(two_no_line.url, user="ws")
    async with httpx.AsyncClient(base_url=two_no_line.url, timeout=30) as http:
        streams = [
            await http.send(
                http.build_request("POST", "/v1/chat/completions", json=body(f"h{i}", stream=True)),
                stream=True,
            )
            for i in range(2)
        ]
        assert [s.status_code for s in streams] == [200, 200]  # both turns under way
        refused = await socket.request("message.send", ARIA)
        assert refused["ok"] is False
        assert refused["error"]["code"] == "overloaded"
        assert refused["error"]["retry_after"] > 0
        # A streaming request past the bounds is refused before any stream starts: a 503.
        assert_overloaded(await http.post("/v1/chat/completions", json=body("h3", stream=True)))
        for stream in streams:
            text = "".join([line async for line in stream.aiter_lines()])
            assert "data: [DONE]" in text
            await stream.aclose()
    await until_idle(two_no_line.url)
    accepted = await socket.request("message.send", ARIA)  # the slots came back
    assert accepted["ok"] is True
    frames = await socket.events_until(
        "message.done", conversation=accepted["result"]["conversation"]
    )
    assert delta_text(frames) == REPLY
    await socket.close()


async def test_clients_that_hang_up_mid_stream_give_their_slots_back(two_no_line: Server) -> None:
    hangups = 5  # more than the 2 slots: one leaked slot each time would refuse everything
    for _ in range(hangups):
        two_no_line.model.enqueue("w " * 200, delay_s=0.05)
    async with httpx.AsyncClient(base_url=two_no_line.url, timeout=30) as http:
        for i in range(hangups):
            request = http.build_request(
                "POST", "/v1/chat/completions", json=body(f"gone{i}", stream=True)
            )
            response = await http.send(request, stream=True)
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if '"content":"w' in line:  # the reply is streaming: hang up
                    break
            await response.aclose()
            await until_idle(two_no_line.url)
    await assert_both_slots_free(two_no_line)


async def test_clients_that_hang_up_before_the_response_starts_give_their_slots_back(
    two_no_line: Server,
) -> None:
    hangups = 5
    for _ in range(hangups):  # the server answers after the first token: 0.5 s from now
        two_no_line.model.enqueue(REPLY, first_token_delay_s=0.5)
    for i in range(hangups):
        timeout = httpx.Timeout(10, read=0.1)
        async with httpx.AsyncClient(base_url=two_no_line.url, timeout=timeout) as http:
            with pytest.raises(httpx.ReadTimeout):  # gone before the headers: the body never
                await http.post("/v1/chat/completions", json=body(f"gone{i}", stream=True))
        await until_requests(two_no_line.model, i + 1)
        await until_idle(two_no_line.url)
    await assert_both_slots_free(two_no_line)


async def assert_both_slots_free(server: Server) -> None:
    """Two turns at once are admitted: with no line, a single leaked slot would refuse one."""
    for _ in range(2):
        server.model.enqueue(REPLY, first_token_delay_s=0.5)
    async with openai_client(server) as client:
        calls = [
            client.chat.completions.create(
                model="aria", user=f"after{i}", messages=[{"role": "user", "content": "Hi"}]
            )
            for i in range(2)
        ]
        replies = await asyncio.gather(*calls)
    assert [r.choices[0].message.content for r in replies] == [REPLY, REPLY]


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_stream_whose_body_is_never_sent_still_gives_its_slot_back(
    spec_version: str,
) -> None:
    """At the ASGI level: the client is gone before the response starts, so sending its start
    fails (ASGI 2.4: ``OSError``) or the disconnect is heard first (2.3), and the body is never
    iterated. The slot and the turn are let go all the same."""
    admission = Admission(max_concurrent=1, max_queued=0, enqueue_timeout_s=1)
    closed: list[str] = []
    held = AsyncExitStack()
    await held.enter_async_context(admission.slot())

    async def close_turn() -> None:
        closed.append("turn")

    held.push_async_callback(close_turn)
    iterated = False

    async def body() -> AsyncGenerator[str, None]:
        nonlocal iterated
        iterated = True
        yield "data: never\n\n"

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise OSError("the client went away")

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}}
    response = HeldStreamingResponse(body(), held)
    with contextlib.suppress(ClientDisconnect, OSError):
        await response(scope, receive, send)
    assert not iterated
    assert closed == ["turn"]
    assert admission.running == 0
    async with admission.slot():  # the only slot is free again
        assert admission.running == 1
