"""A tiny, fault-injecting OpenAI-compatible server for tests: ``POST /v1/chat/completions``
on 127.0.0.1, run by uvicorn in a background thread, answering with scripted behaviours.

    with FakeOpenAIServer() as server:
        server.enqueue(Reply(["Hel", "lo"]), Fail(500), Fail(429), Hang(5))
        ... OpenAICompatChatModel(base_url=server.base_url, ...) ...
        server.requests[0]["body"]["messages"]

Faults: ``Fail(status)`` (429, 5xx, 4xx with an OpenAI-style body), ``Hang(s)`` (no answer at
all), ``Reply(first_token_delay_s=...)`` (a slow first token), ``Reply(token_delay_s=...)``
(a slow stream), ``Reply(break_after=n)`` (the connection drops midway), ``Reply([])`` (an
empty completion), ``Raw(b"data: {not json")`` (malformed events), ``Reply(tool_calls=[Call(...)])``
(tool calls, their arguments streamed in ``pieces`` fragments each). ``server.otherwise`` is
what it answers when nothing is scripted (``Reply()``; set ``Fail(503)`` for a dead backend).
``server.abandoned`` counts the streams whose client went away before their end.
Every wait ends early when the server stops, so a test never waits for its own teardown.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Call:
    """A tool call the reply makes; ``arguments`` is sent as given, JSON or not."""

    name: str
    arguments: str = "{}"
    id: str = "call_1"


@dataclass
class Reply:
    """A normal answer: streamed as SSE when the client asks for a stream, else plain JSON."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    tool_calls: list[Call] = field(default_factory=list)  # after the tokens
    pieces: int = 3  # fragments of each call's arguments in a stream
    break_after_pieces: int | None = None  # drop the connection after this many tool events
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = (7, 3)  # (prompt, completion); None: send no usage
    first_token_delay_s: float = 0.0
    token_delay_s: float = 0.0  # before every token after the first
    break_after: int | None = None  # drop the connection after this many tokens
    plain_json: bool = False  # answer plain JSON even when asked to stream


@dataclass
class Fail:
    """An HTTP error with an OpenAI-style error body."""

    status: int
    message: str = "scripted failure"


@dataclass
class Raw:
    """Exactly these bytes, whatever was asked."""

    body: bytes
    content_type: str = "text/event-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # e.g. a Content-Encoding


@dataclass
class Hang:
    """Accept the request and say nothing for ``seconds``, then answer 504."""

    seconds: float = 30.0


Behaviour = Reply | Fail | Raw | Hang


class StreamBroken(Exception):
    """Raised inside a streaming body so that uvicorn drops the connection midway."""


class FakeOpenAIServer:
    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: a certificate and its key (PEM files) to serve HTTPS with."""
        self._scheme = "https" if tls else "http"
        self.requests: list[dict[str, Any]] = []  # {"headers": {...}, "body": {...}}
        self.otherwise: Behaviour = Reply()
        self.abandoned = 0  # streams the client left before their end
        self._script: deque[Behaviour] = deque()
        self._stopping = threading.Event()
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def base_url(self) -> str:
        port = self._socket.getsockname()[1]
        return f"{self._scheme}://127.0.0.1:{port}/v1"

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Script the next answers, in order; with nothing scripted the server sends
        ``otherwise``."""
        self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget the script, the recorded requests, ``otherwise`` and ``abandoned`` (for a
        shared server)."""
        self._script.clear()
        self.requests.clear()
        self.otherwise = Reply()
        self.abandoned = 0

    def __enter__(self) -> Self:
        self._socket.bind(("127.0.0.1", 0))
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        behaviour = self._script.popleft() if self._script else self.otherwise
        if isinstance(behaviour, Hang):
            await self._pause(behaviour.seconds)
            return JSONResponse({"error": {"message": "hung"}}, status_code=504)
        if isinstance(behaviour, Fail):
            error = {"message": behaviour.message, "type": "scripted_error", "code": None}
            return JSONResponse({"error": error}, status_code=behaviour.status)
        if isinstance(behaviour, Raw):
            return Response(
                behaviour.body,
                status_code=behaviour.status,
                media_type=behaviour.content_type,
                headers=behaviour.headers,
            )
        if behaviour.plain_json or not body.get("stream"):
            return JSONResponse(_completion(body["model"], behaviour))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._watched(_sse(body["model"], behaviour, include_usage, self._pause)),
            media_type="text/event-stream",
        )

    async def _watched(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``events``, counting a stream that the client left (Starlette cancels the body on
        its disconnect) in ``abandoned``."""
        try:
            async for event in events:
                yield event
        except asyncio.CancelledError:
            self.abandoned += 1
            raise

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops."""
        await asyncio.to_thread(self._stopping.wait, seconds)


def _completion(model: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.tokens) or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    result: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
    }
    if reply.usage is not None:
        result["usage"] = _usage(reply.usage)
    return result


async def _sse(
    model: str, reply: Reply, include_usage: bool, pause: Callable[[float], Awaitable[None]]
) -> AsyncIterator[bytes]:
    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
    for index, token in enumerate(reply.tokens):
        if index == reply.break_after:
            raise StreamBroken("scripted: the stream breaks here")
        delay = reply.first_token_delay_s if index == 0 else reply.token_delay_s
        if delay:
            await pause(delay)
        yield event([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
    for step, pieces in enumerate(_tool_call_pieces(reply)):
        if step == reply.break_after_pieces:
            raise StreamBroken("scripted: the stream breaks in a tool call")
        yield event([{"index": 0, "delta": {"tool_calls": pieces}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}])
    if include_usage and reply.usage is not None:
        yield event([], usage=_usage(reply.usage))
    yield b"data: [DONE]\n\n"


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_call_pieces(reply: Reply) -> list[list[dict[str, Any]]]:
    """Each call as OpenAI streams it (id, type and name first, then the arguments in
    fragments), the calls' pieces interleaved, one list per event."""
    streams: list[list[dict[str, Any]]] = []
    for index, call in enumerate(reply.tool_calls):
        size = max(1, -(-len(call.arguments) // max(1, reply.pieces)))
        head = {"index": index, "id": call.id, "type": "function"}
        pieces = [{**head, "function": {"name": call.name, "arguments": ""}}]
        pieces += [
            {"index": index, "function": {"arguments": call.arguments[i : i + size]}}
            for i in range(0, len(call.arguments), size)
        ]
        streams.append(pieces)
    longest = max((len(pieces) for pieces in streams), default=0)
    return [[p[step] for p in streams if step < len(p)] for step in range(longest)]
