"""The log context of a request: a ``trace_id`` for every HTTP request and WebSocket
connection (and, in ``ws_connection``, for every WebSocket request).

An incoming W3C ``traceparent`` header lends its trace id, so a caller's logs and ours line
up; otherwise a fresh random one is made (the same 32-hex-digit form). The tracing work will
replace this with real spans; the log field stays the same.

It also writes the access log: one ``request served`` line per HTTP request once its response
has ended (method, path without the query string, status, duration). Uvicorn's own access log
is turned off (``cli/serve.py``): it had no duration, wrote its line before the response
headers (in the way of a streamed reply's first token), and logged the query string and the client
address, which may carry a token or be personal data.
"""

from __future__ import annotations

import random
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

access_log = structlog.get_logger("personae.access")

# version-traceid-parentid-flags; version ff and an all-zero trace id are invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
# Everything a request or the turn it runs may bind; reset when the request ends.
REQUEST_KEYS = ("user", "character", "conversation")


def new_trace_id() -> str:
    return f"{random.getrandbits(128):032x}"


def trace_id_from(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent`` header value, else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "ff" or match.group(2) == _ZERO_TRACE:
        return None
    return match.group(2)


class RequestContextMiddleware:
    """Binds ``trace_id`` for the request and clears the turn keys, so nothing from a
    previous request served by the same task shows up in this one's lines; logs each HTTP
    request once it has ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        traceparent = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
                break
        trace_id = trace_id_from(traceparent) or new_trace_id()
        unbound = dict.fromkeys(REQUEST_KEYS, ...)  # Ellipsis: not logged
        tokens = bind_contextvars(trace_id=trace_id, **unbound)
        if scope["type"] == "http":
            await self._served(scope, receive, send)
        else:
            await self.app(scope, receive, send)
        # Only on success: after a failure the outer handlers still log with the context
        # (and the server runs each request in its own task, where nothing lingers).
        reset_contextvars(**tokens)

    async def _served(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before a response starts

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            access_log.info(
                "request served",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
