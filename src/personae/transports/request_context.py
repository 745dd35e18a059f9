"""The log context of a request: a ``trace_id`` for every HTTP request and WebSocket
connection (and, in ``ws_connection``, for every WebSocket request).

An incoming W3C ``traceparent`` header lends its trace id, so a caller's logs and ours line
up; otherwise a fresh random one is made (the same 32-hex-digit form). The tracing work will
replace this with real spans; the log field stays the same.
"""

from __future__ import annotations

import random
import re

from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

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
    previous request served by the same task shows up in this one's lines."""

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
        await self.app(scope, receive, send)
        # Only on success: after a failure the outer handlers still log with the context
        # (and the server runs each request in its own task, where nothing lingers).
        reset_contextvars(**tokens)
