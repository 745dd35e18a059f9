"""Personae's MCP server over streamable HTTP, at ``/mcp`` of the main HTTP server.

Mounted in the app rather than on a port of its own: one listener, so the same TLS, body-size
limit, tracing and API keys apply, and nothing more to open in a firewall. Every request is
authenticated here, before the SDK sees it (``Authorization: Bearer <key>`` or ``X-API-Key``,
as the rest of the API): no key, no MCP session, a 401 like any route. The session manager
is stateless with JSON answers: each POST stands alone, so any worker can serve it and no
session outlives its request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from personae.core.types import Principal
from personae.errors import NotAuthenticated
from personae.mcp.server import Context, build_server
from personae.mcp.tools import McpPorts

log = structlog.get_logger(__name__)

PATH = "/mcp"
PRINCIPAL = "personae.mcp.principal"  # where a request's caller waits for the tools, in scope


class McpEndpoint:
    """The ASGI app at ``/mcp``; serves once ``running`` has started it (503 before)."""

    def __init__(self, *, security: TransportSecuritySettings | None = None) -> None:
        self._security = security
        self._manager: StreamableHTTPSessionManager | None = None
        self._ports: McpPorts | None = None

    @asynccontextmanager
    async def running(self, ports: McpPorts) -> AsyncIterator[None]:
        """Serve with ``ports`` until the context ends (the app's lifespan)."""
        manager = StreamableHTTPSessionManager(
            app=build_server(ports, _from_request),
            stateless=True,
            json_response=True,
            security_settings=self._security,
        )
        async with manager.run():
            self._manager, self._ports = manager, ports
            try:
                yield
            finally:
                self._manager, self._ports = None, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager, ports = self._manager, self._ports
        if scope["type"] != "http":
            return
        if manager is None or ports is None:
            await _refuse(send, 503, "not_ready", "the server is starting")
            return
        try:
            principal = await ports.authenticator.authenticate(_credential(Headers(scope=scope)))
        except NotAuthenticated as exc:
            status = 403 if exc.code == "permission_denied" else 401
            await _refuse(send, status, exc.code, exc.message)
            return
        state = dict(scope.get("state") or {})
        state[PRINCIPAL] = principal
        await manager.handle_request({**scope, "state": state}, receive, send)


async def _from_request(ctx: Context) -> tuple[Principal, str | None]:
    """The caller ``McpEndpoint`` authenticated for this request."""
    request = ctx.request
    found = request.scope.get("state", {}).get(PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(found, Principal):
        raise NotAuthenticated("an API key is required (Authorization: Bearer <key>)")
    client = request.client.host if isinstance(request, Request) and request.client else None
    return found, client


def _credential(headers: Headers) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else authorization
    return headers.get("x-api-key")


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": code, "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
