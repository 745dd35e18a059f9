"""Log lines of a turn carry its ids (trace, user, character, conversation) and never the text.

The server logs through the real ``configure_logging`` pipeline, as JSON, into a buffer.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from personae.app import build_app
from personae.errors import BackendUnavailable
from personae.observability.logging import configure_logging, redact_content
from personae.testing import FakeChatModel
from personae.transports.http import create_http_app
from personae.transports.request_context import new_trace_id, trace_id_from
from tests.live_server import live_server
from tests.observability.conftest import eventually
from tests.transports.conftest import Server, make_settings
from tests.transports.ws_client import WsClient

QUESTION = "Where to, navigator? My PIN is 4321."
REPLY = "Set course for Vesta, captain."
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
HEX32 = re.compile(r"[0-9a-f]{32}")
SERVER_LOGGERS = ("personae", "uvicorn")


class LogBuffer:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self._mark = 0

    def mark(self) -> None:
        """Later ``lines()`` only return what was logged from now on."""
        self._mark = len(self.stream.getvalue())

    def text(self) -> str:
        return self.stream.getvalue()[self._mark :]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def find(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == event]

    def served(self) -> list[dict[str, Any]]:
        """What the server logged (the test's own HTTP and WebSocket clients log too)."""
        return [line for line in self.lines() if line["logger"].startswith(SERVER_LOGGERS)]


@contextmanager
def capture(*, log_content: bool = False) -> Iterator[LogBuffer]:
    buffer = LogBuffer()
    root = logging.getLogger()
    level = root.level
    configure_logging(
        "debug", json=True, log_content=log_content, stream=buffer.stream, cache_loggers=False
    )
    ours = root.handlers[-1]
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        root.removeHandler(ours)
        root.setLevel(level)


@pytest.fixture
def logs() -> Iterator[LogBuffer]:
    with capture() as buffer:
        yield buffer


@pytest.fixture
def server(tmp_path: Path, logs: LogBuffer) -> Iterator[Server]:
    settings = make_settings(tmp_path)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


def ask(url: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": "aria", "user": "sam", "messages": [{"role": "user", "content": QUESTION}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_an_http_turn_logs_its_ids_and_no_text(server: Server, logs: LogBuffer) -> None:
    server.model.enqueue(REPLY)
    logs.mark()
    response = ask(server.url, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    conversation = response.headers["X-Personae-Conversation"]
    eventually(lambda: bool(logs.find("turn finished")))
    (line,) = logs.find("turn finished")
    assert line["trace_id"] == TRACE
    assert (line["user"], line["character"], line["conversation"]) == ("sam", "aria", conversation)
    assert (line["outcome"], line["backend"], line["tokens_out"]) == ("ok", "fake", 5)
    assert line["latency_ms"] >= line["ttft_ms"] > 0
    served = logs.served()
    assert {e["logger"] for e in served} >= {"personae.turns", "personae.access"}
    (access,) = [e for e in served if e["logger"] == "personae.access"]
    assert (access["method"], access["path"], access["status"]) == (
        "POST",
        "/v1/chat/completions",
        200,
    )
    assert access["duration_ms"] >= line["latency_ms"]
    assert all(entry["trace_id"] == TRACE for entry in served)
    assert "4321" not in json.dumps(served)
    assert "Vesta" not in json.dumps(served)


def test_each_request_without_traceparent_gets_its_own_trace_id(
    server: Server, logs: LogBuffer
) -> None:
    logs.mark()
    ask(server.url, headers={"traceparent": "00-zzz-bad-01"})
    ask(server.url)
    eventually(lambda: len(logs.find("turn finished")) == 2)
    ids = [line["trace_id"] for line in logs.find("turn finished")]
    assert all(HEX32.fullmatch(trace_id) for trace_id in ids)
    assert ids[0] != ids[1]


async def test_a_failed_ws_turn_logs_every_line_with_its_ids(
    server: Server, logs: LogBuffer
) -> None:
    server.model.enqueue(REPLY, error=BackendUnavailable("HTTP 503", backend="fake"))
    client, _ = await WsClient.open(server.url, user="kim")
    logs.mark()
    answer = await client.request("message.send", {"character": "aria", "text": QUESTION})
    conversation = answer["result"]["conversation"]
    await client.events_until("error", conversation=conversation)
    await client.close()
    eventually(lambda: bool(logs.find("turn finished")))
    router = logs.find("backend failed before replying")
    finished = logs.find("turn finished")
    assert finished[0]["outcome"] == "failed"
    for line in (*router, *finished):
        assert HEX32.fullmatch(line["trace_id"])
        assert (line["user"], line["character"], line["conversation"]) == (
            "kim",
            "aria",
            conversation,
        )
    assert router[0]["trace_id"] == finished[0]["trace_id"]
    served = logs.served()
    assert any(e["logger"] == "uvicorn.error" for e in served)  # debug lines of the server
    assert "4321" not in json.dumps(served)


def test_log_content_on_logs_both_texts_at_debug(tmp_path: Path) -> None:
    with capture(log_content=True) as buffer:
        settings = make_settings(tmp_path, log_content=True)
        model = FakeChatModel()
        model.enqueue(REPLY)
        with live_server(build_app(settings, backends={"fake": model})) as url:
            assert ask(url).status_code == 200
            eventually(lambda: bool(buffer.find("turn content")))
        (line,) = buffer.find("turn content")
        assert (line["text"], line["reply"], line["level"]) == (QUESTION, REPLY, "debug")
        assert line["user"] == "sam"


def test_log_content_off_redacts_text_whoever_logs_it(logs: LogBuffer) -> None:
    structlog.get_logger("elsewhere").warning("oops", text=QUESTION, reply=["a"], code="x")
    (line,) = logs.find("oops")
    assert (line["text"], line["reply"], line["code"]) == (
        f"<{len(QUESTION)} chars>",
        "<redacted>",
        "x",
    )
    assert redact_content(None, "info", {"event": "e", "other": "kept"})["other"] == "kept"


def test_traceparent_gives_its_trace_id_when_valid() -> None:
    assert trace_id_from(TRACEPARENT) == TRACE
    assert trace_id_from(TRACEPARENT.upper()) == TRACE
    assert trace_id_from(f"ff-{TRACE}-00f067aa0ba902b7-01") is None  # version ff is invalid
    assert trace_id_from(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert trace_id_from("00-abc-def-01") is None
    assert trace_id_from(None) is None
    assert HEX32.fullmatch(new_trace_id())


async def test_the_middleware_leaves_no_context_behind(logs: LogBuffer) -> None:
    # In process, the app runs in the caller's task: a request's ids must not leak out.
    app = create_http_app(lifespan=_no_lifespan, max_body_bytes=4096)
    structlog.contextvars.bind_contextvars(user="outer")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/healthz", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    assert structlog.contextvars.get_contextvars() == {"user": "outer"}
    structlog.contextvars.clear_contextvars()


async def test_the_access_log_has_the_status_even_of_a_failure_and_no_query_string(
    logs: LogBuffer,
) -> None:
    app = create_http_app(lifespan=_no_lifespan, max_body_bytes=4096)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        logs.mark()
        found = await client.get("/healthz?token=pk_secret_in_a_query")
        failed = await client.get("/boom")
    assert (found.status_code, failed.status_code) == (200, 500)
    served = logs.find("request served")
    assert [(e["path"], e["status"]) for e in served] == [("/healthz", 200), ("/boom", 500)]
    assert all(e["duration_ms"] >= 0 and e["method"] == "GET" for e in served)
    assert "pk_secret" not in json.dumps(logs.served())  # the test client logs its URLs


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
