"""Personae's MCP server over stdio (``personae mcp serve``), for MCP hosts that start their
servers as subprocesses.

A stdio server has one caller for its whole life: the API key it was started with (flag or
``PERSONAE_API_KEY``), checked once. Without a valid key (on a server that has keys) it still
answers, so the host shows why: every request is refused with the authentication error.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import structlog
from mcp.server.stdio import stdio_server

from personae.core.types import Principal
from personae.errors import NotAuthenticated
from personae.mcp.server import Context, Identify, build_server
from personae.mcp.tools import McpPorts

log = structlog.get_logger(__name__)


async def serve_stdio(
    open_ports: Callable[[], AbstractAsyncContextManager[McpPorts]], credential: str | None
) -> None:
    """Serve until the host closes stdin. stdout is claimed for MCP first (anything else
    printed goes to stderr from then on), then the runtime opens: nothing it prints can reach
    the wire."""
    async with stdio_server() as (read, write), open_ports() as ports:
        identify = await _fixed_caller(ports, credential)
        server = build_server(ports, identify)
        await server.run(read, write, server.create_initialization_options())


async def _fixed_caller(ports: McpPorts, credential: str | None) -> Identify:
    refusal: NotAuthenticated | None = None
    principal: Principal | None = None
    try:
        principal = await ports.authenticator.authenticate(credential)
    except NotAuthenticated as exc:
        refusal = exc
        log.warning("mcp stdio: the API key was refused; every request will be", error=exc.message)

    async def identify(ctx: Context) -> tuple[Principal, str | None]:
        if principal is None:
            raise refusal or NotAuthenticated("an API key is required")
        return principal, None

    return identify
