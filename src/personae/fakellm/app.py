"""The fake backend as a bare ASGI application: five routes, no framework.

Bare ASGI because a fault must be able to drop a connection: a framework answers 500 for a
handler that raises, while here the response is started with its full length and then cut
short, which the caller sees as the peer going away mid-reply. It also keeps the fake cheap
next to the gateway it measures.

Scripted replies (``enqueue``, ``script.py``) take precedence over all that: tests use them to
make the fake call tools.

Token ``k`` of a reply is due at ``arrival + first_token_s + k / tokens_per_s`` (the schedule
does not drift); the lag behind that schedule is counted in ``stats``. The event loop's timers
wake within about a millisecond of the due time, early as well as late: the schedule holds to
that, and the stamps say when each token really left.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from personae.fakellm import wire
from personae.fakellm.config import FakeLLMConfig
from personae.fakellm.embeddings import embed, encode
from personae.fakellm.script import Scripted
from personae.fakellm.stamps import arrival_word, token_word
from personae.fakellm.stats import FakeStats

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MAX_BODY = 8 * 1024 * 1024
_STATUS_FAULTS = {"status_429": 429, "status_500": 500, "status_503": 503}


class BadRequest(Exception):
    pass


class FakeLLM:
    """An OpenAI-compatible backend, itself the ASGI application."""

    def __init__(self, config: FakeLLMConfig | None = None) -> None:
        self.config = config or FakeLLMConfig()
        self.rng = random.Random(self.config.seed)
        self.stats = FakeStats()
        self.chunks = wire.ChunkWriter(self.config.model)
        self.script: deque[Scripted] = deque()
        self.scripted_requests: list[dict[str, Any]] = []  # the bodies scripted replies answered
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
            ("GET", "/stats"): self._stats,
            ("POST", "/stats/reset"): self._reset,
        }

    def reset(self) -> None:
        self.stats = FakeStats()

    def enqueue(self, *replies: Scripted) -> None:
        """Script the next replies, in order (``script.py``)."""
        self.script.extend(replies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        route = self._routes.get((scope["method"], scope["path"]))
        if route is None:
            known = {path for _, path in self._routes}
            status = 405 if scope["path"] in known else 404
            await _json(
                send, status, wire.error(status, f"no route {scope['method']} {scope['path']}")
            )
            return
        try:
            await route(scope, receive, send)
        except BadRequest as exc:
            await _json(send, 400, wire.error(400, str(exc)))

    # --- chat ---------------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrived_ns = time.time_ns()
        arrived = time.monotonic()  # uvloop's loop.time() only has millisecond resolution
        body = await _read_json(receive)
        count = _reply_limit(body, self.config.lengths.draw(self.rng))
        self.stats.requests += 1
        if self.script:
            self.scripted_requests.append(body)
            await self._scripted(send, arrived, body, self.script.popleft())
            return
        fault = self.config.faults.draw(self.rng)
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault in _STATUS_FAULTS:
            status = _STATUS_FAULTS[fault]
            headers = [(b"retry-after", b"1")] if status == 429 else []
            await _json(send, status, wire.error(status, f"injected fault {status}"), headers)
            return
        if fault == "timeout":
            await _hang(receive, self.config.hang_s)
            await _drop(send)
            return
        prompt = wire.prompt_tokens(body)
        head = arrival_word(arrived_ns) if self.config.stamp_arrival else ""
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            cut = count // 2 if fault == "disconnect" else None
            await self._stream(receive, send, arrived, head, count, prompt, include_usage, cut)
            return
        await self._sleep_until(self._due(arrived, count - 1))
        if fault == "disconnect":
            await _drop(send)
            return
        self.stats.tokens += count
        text = head + token_word() * count  # one body, emitted at one moment
        await _json(send, 200, wire.completion(self.config.model, text, prompt, count))

    def _due(self, arrived: float, k: int) -> float:
        pace = self.config.tokens_per_s
        return arrived + self.config.first_token_s + (k / pace if pace > 0 else 0.0)

    @staticmethod
    async def _sleep_until(due: float) -> None:
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        arrived: float,
        head: str,
        count: int,
        prompt: int,
        include_usage: bool,
        cut: int | None,
    ) -> None:
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        self.stats.stream_opened()
        try:
            await _start(send, 200, b"text/event-stream")
            await _body(send, self.chunks.role)
            for k in range(count):
                due = self._due(arrived, k)
                await self._sleep_until(due)
                if gone.is_set():
                    return
                if k == cut:
                    return  # the response never completes: the caller sees the peer go away
                # Behind schedule only: a timer that fired early is no lag (and no lead).
                self.stats.lag_ms.append(max(0.0, (time.monotonic() - due) * 1000))
                self.stats.tokens += 1
                text = token_word()
                if k == 0 and head:
                    text = head + text
                await _body(send, self.chunks.content(text))
            tail = self.chunks.finish
            if include_usage:
                tail += self.chunks.usage(prompt, count)
            await _body(send, tail + wire.DONE, more=False)
            self.stats.streams_finished += 1
        finally:
            self.stats.active -= 1
            watcher.cancel()

    async def _scripted(
        self, send: Send, arrived: float, body: dict[str, Any], reply: Scripted
    ) -> None:
        number = len(self.scripted_requests)
        words = reply.words(body)
        prompt = wire.prompt_tokens(body)
        count = len(words) + sum(len(c.arguments_text) // 4 + 1 for c in reply.tool_calls)
        self.stats.tokens += count
        if body.get("stream") is not True:
            await self._sleep_until(self._due(arrived, max(0, len(words) - 1)))
            message = reply.message(body, number)
            answer = wire.completion(
                self.config.model,
                "",
                prompt,
                count,
                message=message,
                finish_reason=reply.finish_reason,
            )
            await _json(send, 200, answer)
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        await _start(send, 200, b"text/event-stream")
        await _body(send, self.chunks.role)
        for k, word in enumerate(words):
            await self._sleep_until(self._due(arrived, k))
            await _body(send, self.chunks.delta({"content": word}))
        for pieces in reply.call_pieces(number):
            await _body(send, self.chunks.delta({"tool_calls": pieces}))
        tail = self.chunks.finished(reply.finish_reason)
        if include_usage:
            tail += self.chunks.usage(prompt, count)
        await _body(send, tail + wire.DONE, more=False)

    # --- the rest -----------------------------------------------------------------------

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_json(receive)
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise BadRequest("input must be a string or a non-empty list of strings")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise BadRequest("encoding_format must be float or base64")
        dims = body.get("dimensions", self.config.embedding_dims)
        if not isinstance(dims, int) or not 1 <= dims <= 8192:
            raise BadRequest("dimensions must be an integer 1..8192")
        self.stats.embeddings += len(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": encode(embed(text, dims), fmt)}
            for i, text in enumerate(texts)
        ]
        tokens = sum(max(1, len(t) // 4) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        model = body.get("model", self.config.model)
        await _json(send, 200, {"object": "list", "data": data, "model": model, "usage": usage})

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        card = {"id": self.config.model, "object": "model", "created": 0, "owned_by": "fake"}
        await _json(send, 200, {"object": "list", "data": [card]})

    async def _stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(send, 200, self.stats.as_dict())

    async def _reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reset()
        await _json(send, 200, {"reset": True})


def _reply_limit(body: dict[str, Any], drawn: int) -> int:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is None:
        return drawn
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise BadRequest("max_tokens must be a positive integer")
    return min(drawn, limit)


async def _read_json(receive: Receive) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise BadRequest("request body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _hang(receive: Receive, seconds: float) -> None:
    """Hold the request for ``seconds`` or until the caller gives up, whichever comes first."""
    gone = asyncio.Event()
    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
    try:
        async with asyncio.timeout(seconds):
            await gone.wait()
    except TimeoutError:
        pass
    finally:
        watcher.cancel()


async def _drop(send: Send) -> None:
    """Promise a body and send half of it: the server closes the connection when the
    application returns with the response incomplete."""
    await _start(send, 200, b"application/json", [(b"content-length", b"64")])
    await _body(send, b'{"id": "chatcmpl-fake", "choices": [')


async def _start(
    send: Send, status: int, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or [])],
        }
    )


async def _body(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    length = [(b"content-length", str(len(data)).encode())]
    await _start(send, status, b"application/json", [*length, *(headers or [])])
    await _body(send, data, more=False)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
