"""A fake OpenAI-compatible LLM for the benchmarks: ``POST /v1/chat/completions`` streams a reply
as server-sent events at a fixed pace, like a real backend generating tokens.

Every token is a distinct word, `` t<ns>``, where ``<ns>`` is ``time.time_ns()`` taken the moment
the token is handed to the HTTP layer. A client of Personae on the same machine reads it back
out of the ``message.delta`` text and subtracts it from its own receive time: that difference
is what Personae (and the loopback hops on either side of it) added to that token.

Token ``k`` of a stream is due at ``start + k / tokens_per_s`` (the schedule does not drift); a
token emitted after its due time counts as pacing lag, reported by ``GET /stats`` together with
how many streams ran at once. A backend that the server reads too slowly falls behind here
(its writes wait for the socket to drain), so a large lag means back-pressure or a starved CPU.

Run on its own (starlette + uvicorn on 127.0.0.1, port 0 picks a free one)::

    .venv/bin/python bench/fake_llm.py --tokens-per-s 50 --reply-tokens 100

It prints ``fake-llm listening on http://127.0.0.1:PORT``; the base URL for an OpenAI client is
that plus ``/v1``. ``bench/ws_streaming.py`` starts it as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from _server import raise_nofile, summary_ms
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench-fake",
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


# One token's event, split around the timestamp so that emitting costs one concatenation.
_TOKEN_HEAD, _TOKEN_TAIL = _chunk(
    [{"index": 0, "delta": {"content": " t@NS@"}, "finish_reason": None}]
).split(b"@NS@")
_ROLE = _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
_FINISH = _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
_DONE = b"data: [DONE]\n\n"


class FakeLLM:
    def __init__(self, *, tokens_per_s: float, reply_tokens: int, first_token_s: float) -> None:
        self.tokens_per_s = tokens_per_s
        self.reply_tokens = reply_tokens
        self.first_token_s = first_token_s
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/stats", self._stats, methods=["GET"]),
                Route("/stats/reset", self._reset, methods=["POST"]),
            ]
        )

    def reset(self) -> None:
        self.started = 0
        self.finished = 0
        self.active = 0
        self.peak_active = 0
        self.tokens = 0
        self.lag_ms: list[float] = []

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or self.reply_tokens
        count = min(self.reply_tokens, int(limit))
        if not body.get("stream"):
            text = "".join(f" t{time.time_ns()}" for _ in range(count))
            message = {"role": "assistant", "content": text}
            return JSONResponse(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "bench-fake"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": _usage(count),
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._stream(count, include_usage), media_type="text/event-stream")

    async def _stream(self, count: int, include_usage: bool) -> AsyncIterator[bytes]:
        clock = time.monotonic  # uvloop's loop.time() only has millisecond resolution
        interval = 1.0 / self.tokens_per_s
        start = clock() + self.first_token_s
        self.started += 1
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            yield _ROLE
            for k in range(count):
                due = start + k * interval
                wait = due - clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.lag_ms.append((clock() - due) * 1000)
                self.tokens += 1
                yield _TOKEN_HEAD + str(time.time_ns()).encode() + _TOKEN_TAIL
            yield _FINISH
            if include_usage:
                yield _chunk([], usage=_usage(count))
            yield _DONE
            self.finished += 1
        finally:
            self.active -= 1

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "bench-fake", "object": "model"}]})

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "streams_started": self.started,
                "streams_finished": self.finished,
                "active": self.active,
                "peak_active": self.peak_active,
                "tokens": self.tokens,
                "pacing_lag_ms": summary_ms(self.lag_ms),
            }
        )

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})


def _usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                print(f"fake-llm listening on http://{host}:{port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--reply-tokens", type=int, default=100)
    parser.add_argument("--first-token-s", type=float, default=0.0)
    args = parser.parse_args()
    raise_nofile(1 << 16)
    fake = FakeLLM(
        tokens_per_s=args.tokens_per_s,
        reply_tokens=args.reply_tokens,
        first_token_s=args.first_token_s,
    )
    config = uvicorn.Config(
        fake.app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    _AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
