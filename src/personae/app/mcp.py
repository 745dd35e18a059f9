"""MCP in the runtime (``mcp:`` settings, docs/mcp.md): connections to the declared servers,
whose tools become skills through the plugin hook, closed with the runtime; and Personae's own
MCP server, at ``/mcp`` of the app or over stdio (``personae mcp serve``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import pluggy
from mcp.server.transport_security import TransportSecuritySettings

from personae.errors import ConfigurationError
from personae.mcp.client import Backoff, McpConnection, McpTarget
from personae.mcp.http import McpEndpoint
from personae.mcp.skills import McpSkillsPlugin, connect_all
from personae.mcp.stdio import serve_stdio
from personae.mcp.tools import McpPorts
from personae.settings import McpServerSettings, McpSettings, Settings
from personae.transports.auth import end_user

if TYPE_CHECKING:
    from personae.app.runtime import Runtime

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def mcp_target(name: str, server: McpServerSettings) -> McpTarget:
    """Where the ``mcp.servers`` entry ``name`` is; a secret header's value from its variable."""
    headers = dict(server.headers)
    for header, variable in server.headers_env.items():
        value = os.environ.get(variable)
        if not value:
            raise ConfigurationError(
                f"mcp.servers.{name}.headers_env names {variable}, which is not set", server=name
            )
        headers[header] = value
    return McpTarget(
        name=name,
        command=server.command,
        args=tuple(server.args),
        env=dict(server.env),
        cwd=server.cwd,
        url=server.url,
        headers=headers,
        connect_timeout_s=server.connect_timeout_s,
        call_timeout_s=server.timeout_s,
    )


async def open_mcp_skills(
    settings: McpSettings, stack: AsyncExitStack, plugins: pluggy.PluginManager
) -> Sequence[McpConnection]:
    """Connect to every enabled server and register its tools as skills on ``plugins``
    (before the skill registry is read). Connections close with ``stack``."""
    connections: list[tuple[McpConnection, Sequence[str] | None]] = []
    for name, server in settings.servers.items():
        if not server.enabled:
            continue
        backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        connection = McpConnection(mcp_target(name, server), backoff=backoff)
        stack.push_async_callback(connection.close)
        connections.append((connection, server.tools))
    if connections:
        plugins.register(McpSkillsPlugin(await connect_all(connections)), name="personae-mcp")
    return [connection for connection, _ in connections]


def mcp_ports(runtime: Runtime) -> McpPorts:
    """What Personae's own MCP tools use of a running server."""
    return McpPorts(
        service=runtime.service,
        catalog=runtime.catalog,
        store=runtime.store,
        authenticator=runtime.authenticator,
        acting_for=end_user,  # the HTTP API's rule: whom a caller may act for
        admission=runtime.hub.admission,  # the same bounds as every other turn
        memory=runtime.memory,
        gate=runtime.security.gate if runtime.security is not None else None,
    )


def mcp_endpoint(settings: Settings) -> McpEndpoint | None:
    """The ``/mcp`` endpoint, or None when ``mcp.serve_http`` is off. On a loopback address
    the Host and Origin headers must be loopback too (DNS rebinding), as the SDK advises."""
    if not settings.mcp.serve_http:
        return None
    security = None
    if settings.host in LOOPBACK:
        security = TransportSecuritySettings(
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    return McpEndpoint(security=security)


@asynccontextmanager
async def serving_mcp(endpoint: McpEndpoint | None, runtime: Runtime) -> AsyncIterator[None]:
    """``/mcp`` answers while this lasts (inside the app's lifespan)."""
    if endpoint is None:
        yield
        return
    async with endpoint.running(mcp_ports(runtime)):
        yield


def serve_mcp_stdio(settings: Settings, credential: str | None) -> None:
    """``personae mcp serve``: a runtime of its own, its tools over stdin and stdout."""
    from personae.app.runtime import open_runtime

    @asynccontextmanager
    async def ports() -> AsyncIterator[McpPorts]:
        async with open_runtime(settings) as runtime:
            yield mcp_ports(runtime)

    asyncio.run(serve_stdio(ports, credential))


def mcp_checks(connections: Sequence[McpConnection]) -> dict[str, str]:
    """``/readyz`` lines: a server down is a warning, not unready (its skills fail softly)."""
    return {
        f"mcp:{c.name}": "ok" if c.connected else f"warning: {c.last_error or 'not connected'}"
        for c in connections
    }
