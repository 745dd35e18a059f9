"""The ``/ws`` endpoint: each connection is a ``Connection`` over the hub the gateway holds."""

from __future__ import annotations

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
