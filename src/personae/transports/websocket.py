"""The ``/ws`` endpoint: each connection is a ``Connection`` over the hub the gateway holds.

It is served on a lane of its own, ahead of the HTTP middleware stack (``WebSocketLane``): a
WebSocket connection is one coroutine that lives for hours, and running it under the router,
the exception middleware and the exit stack kept their frames alive for as long, about
10 KiB per idle connection (bench/ws_idle.py). None of those layers does anything for it:
``Connection`` answers its own errors as frames and close codes.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from personae.transports.gateway import Gateway
from personae.transports.ws_connection import Connection

PATH = "/ws"


class WebSocketLane:
    """ASGI: WebSocket connections to ``/ws`` go straight to the endpoint, the rest to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await websocket_endpoint(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


async def websocket_endpoint(websocket: WebSocket) -> None:
    gw = getattr(websocket.app.state, "gateway", None)
    if not isinstance(gw, Gateway) or gw.hub is None:
        await websocket.close(1013, "the server is starting")
        return
    connection = Connection(
        websocket,
        hub=gw.hub,
        authenticator=gw.authenticator,
        limits=gw.ws_limits,
        gate=gw.security.gate if gw.security is not None else None,
        experiments=gw.experiments,
    )
    gw.connections.add(connection)
    try:
        await connection.run()
    finally:
        gw.connections.discard(connection)


_SLICE_S = 0.05


async def beat_forever(gw: Gateway) -> None:
    """The one heartbeat of all WebSocket connections: every ``heartbeat_interval_s`` each
    connection is pinged, marked idle, or closed when silent past the idle timeout. The work
    is spread over the interval in 50 ms slices, so ten thousand pings go out a few dozen at
    a time instead of in one burst that delays everything else on the loop."""
    slices = max(1, round(gw.ws_limits.heartbeat_interval_s / _SLICE_S))
    while True:
        # One round: the connections held when it starts, dealt into slices (a connection
        # opened during the round waits for the next one; one closed since is skipped).
        held = list(gw.connections)
        for tick in range(slices):
            await asyncio.sleep(gw.ws_limits.heartbeat_interval_s / slices)
            now = time.monotonic()
            for connection in held[tick::slices]:
                connection.beat(now)
