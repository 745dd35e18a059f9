"""The ``/ws`` endpoint: each connection is a ``Connection`` over the hub the gateway holds."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, WebSocket

from personae.transports.gateway import Gateway
from personae.transports.ws_connection import Connection

router = APIRouter()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    gw = getattr(websocket.app.state, "gateway", None)
    if not isinstance(gw, Gateway) or gw.hub is None:
        await websocket.close(1013, "the server is starting")
        return
    connection = Connection(
        websocket, hub=gw.hub, authenticator=gw.authenticator, limits=gw.ws_limits
    )
    gw.connections.add(connection)
    try:
        await connection.run()
    finally:
        gw.connections.discard(connection)


_SLICES = 10


async def beat_forever(gw: Gateway) -> None:
    """The one heartbeat of all WebSocket connections: every ``heartbeat_interval_s`` each
    connection is pinged, marked idle, or closed when silent past the idle timeout. The work
    is spread over the interval in slices, so ten thousand pings do not all go out in one
    burst that delays everything else on the loop."""
    tick = 0
    while True:
        await asyncio.sleep(gw.ws_limits.heartbeat_interval_s / _SLICES)
        now = time.monotonic()
        for connection in list(gw.connections):
            if hash(connection) % _SLICES == tick:
                connection.beat(now)
        tick = (tick + 1) % _SLICES
