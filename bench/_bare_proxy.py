"""The floor under any Python gateway here: a pass-through proxy with no features at all.

A bare ASGI app on the same server stack as ``personae serve`` (uvicorn, uvloop, httptools)
with the same backend client (one aiohttp session, no connection cap). For each request it
reads the body, decodes the JSON and encodes it again (any gateway has to look inside to route
it), forwards it to the backend on the same path, and passes the answer back: a whole body at
once, a stream chunk by chunk as the backend's bytes arrive. No auth, no storage, no prompt,
no parsing of the reply.

Whatever it adds to a turn, Personae cannot add less on this machine: ``gateway_overhead.py``
runs it as the ``bare`` target so that Personae's overhead can be split into what the stack
costs and what the features cost.

    python bench/_bare_proxy.py --backend http://127.0.0.1:8001 [--port 0]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BareProxy:
    def __init__(self, backend: str) -> None:
        self.backend = backend.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.session is not None
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        data = json.dumps(json.loads(body)).encode() if body else None
        headers = {"Content-Type": "application/json"}
        url = self.backend + scope["path"]
        async with self.session.request(scope["method"], url, data=data, headers=headers) as r:
            content_type = r.headers.get("Content-Type", "application/json")
            await send(
                {
                    "type": "http.response.start",
                    "status": r.status,
                    "headers": [(b"content-type", content_type.encode())],
                }
            )
            if content_type.startswith("text/event-stream"):
                async for chunk in r.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await r.read()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, help="the backend's base URL, no /v1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn serves them
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        BareProxy(args.backend), log_config=None, access_log=False, lifespan="on"
    )
    print(f"bare proxy listening on http://{host}:{port}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
