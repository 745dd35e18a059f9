"""One connection to another MCP server (official SDK), kept open between tool calls.

The SDK's transports are anyio task groups, which must be entered and left by the same task.
So each connection is held open by a task of its own (``_hold``); callers only send requests
through the session it holds. A call that finds the connection gone drops it, and the next
call reconnects, no sooner than the backoff allows: a dead server costs each turn a quick
"unavailable", not a fresh connect timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import structlog
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, CallToolResult, Tool

from personae.mcp.errors import McpTimeout, McpUnavailable

log = structlog.get_logger(__name__)

MAX_TOOL_PAGES = 50  # a server that paginates forever cannot hang start-up


@dataclass(frozen=True, slots=True)
class McpTarget:
    """Where a server is: a stdio ``command`` or a streamable HTTP ``url``."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a secret
    connect_timeout_s: float = 15.0
    call_timeout_s: float = 30.0


@dataclass(slots=True)
class Backoff:
    """Exponential wait between failed connects: ``initial_s``, then doubling up to ``max_s``."""

    initial_s: float = 1.0
    max_s: float = 60.0
    failures: int = 0
    retry_at: float = 0.0

    def failed(self, now: float) -> float:
        self.failures += 1
        delay = min(self.max_s, self.initial_s * 2.0 ** (self.failures - 1))
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = 0.0


class McpConnection:
    """The connection to one server: ``tools()`` and ``call()`` connect on demand."""

    def __init__(
        self,
        target: McpTarget,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._connecting = asyncio.Lock()
        self._client: Client | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def tools(self) -> list[Tool]:
        """Every tool the server lists (all pages)."""
        client = await self._connected()
        found: list[Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.target.call_timeout_s):
                for _ in range(MAX_TOOL_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    found += page.tools
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError as exc:
            raise McpTimeout(f"MCP server {self.name!r} did not list its tools in time") from exc
        except Exception as exc:
            await self._lost(client, exc)
            raise McpUnavailable(f"MCP server {self.name!r} failed to list its tools") from exc
        return found

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> CallToolResult:
        """Call ``tool``: its result (``is_error`` for the tool's own failures), or
        ``McpUnavailable`` / ``McpTimeout``."""
        client = await self._connected()
        try:
            async with asyncio.timeout(self.target.call_timeout_s):
                return await client.call_tool(tool, dict(arguments))
        except TimeoutError as exc:
            raise McpTimeout(
                f"MCP server {self.name!r} did not answer {tool} within "
                f"{self.target.call_timeout_s:g} s"
            ) from exc
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self._lost(client, exc)
                raise McpUnavailable(f"MCP server {self.name!r} went away during {tool}") from exc
            raise McpUnavailable(f"MCP server {self.name!r} refused {tool}: {exc.message}") from exc
        except Exception as exc:  # a broken transport: reconnect next time
            await self._lost(client, exc)
            raise McpUnavailable(f"MCP server {self.name!r} failed during {tool}") from exc

    async def close(self) -> None:
        async with self._connecting:
            await self._release()

    async def _connected(self) -> Client:
        async with self._connecting:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            await self._release()  # a holder that ended by itself (the server died)
            wait = self.backoff.retry_at - self._clock()
            if wait > 0:
                raise McpUnavailable(
                    f"MCP server {self.name!r} is unavailable ({self.last_error}); "
                    f"next try in {wait:.0f} s",
                    server=self.name,
                )
            try:
                client = await self._connect()
            except asyncio.CancelledError:  # the caller's own bound (the skill runner's)
                self.last_error = "no answer while connecting"
                self.backoff.failed(self._clock())
                raise
            except Exception as exc:
                self.last_error = _describe(exc)
                delay = self.backoff.failed(self._clock())
                log.warning(
                    "mcp server unavailable",
                    server=self.name,
                    error=self.last_error,
                    retry_in_s=round(delay, 1),
                )
                if isinstance(exc, McpTimeout):
                    raise
                raise McpUnavailable(
                    f"MCP server {self.name!r} is unavailable: {self.last_error}", server=self.name
                ) from exc
            self.backoff.succeeded()
            self.last_error = None
            log.info("mcp server connected", server=self.name)
            return client

    async def _connect(self) -> Client:
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._holder = asyncio.create_task(self._hold(ready, self._stop), name=f"mcp:{self.name}")
        try:
            async with asyncio.timeout(self.target.connect_timeout_s):
                self._client = await asyncio.shield(ready)
        except TimeoutError as exc:
            await self._release()
            raise McpTimeout(
                f"MCP server {self.name!r} did not start within "
                f"{self.target.connect_timeout_s:g} s",
                server=self.name,
            ) from exc
        except BaseException:
            await self._release()
            raise
        return self._client

    async def _hold(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Open the session, hand it over, and keep it open until told to stop."""
        try:
            async with _Opened(self.target) as client:
                ready.set_result(client)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("mcp connection ended", server=self.name, error=_describe(exc))
        finally:
            if not ready.done():
                ready.cancel()

    async def _lost(self, client: Client, exc: BaseException) -> None:
        """``client`` failed: drop it, unless a newer connection has already replaced it."""
        self.last_error = _describe(exc)
        log.warning("mcp server lost", server=self.name, error=self.last_error)
        async with self._connecting:
            if self._client is client:
                await self._release()

    async def _release(self) -> None:
        """Stop the holder task: its exit closes the session and the process or HTTP client.
        One still connecting is cancelled; an open one is asked to stop, then cancelled."""
        holder, client = self._holder, self._client
        self._holder, self._client = None, None
        if holder is None:
            return
        self._stop.set()
        if client is None:
            holder.cancel()
        done, _ = await asyncio.wait({holder}, timeout=5.0)
        if not done:
            holder.cancel()
            await asyncio.wait({holder}, timeout=5.0)


class _Opened:
    """The SDK client, with the HTTP client we give it (for headers) closed after it."""

    def __init__(self, target: McpTarget) -> None:
        self._target = target
        self._http: httpx2.AsyncClient | None = None
        self._client: Client | None = None

    async def __aenter__(self) -> Client:
        target = self._target
        timeout = target.call_timeout_s
        if target.command is not None:
            params = StdioServerParameters(
                command=target.command, args=list(target.args), env=dict(target.env), cwd=target.cwd
            )
            self._client = Client(params, read_timeout_seconds=timeout)
        else:
            assert target.url is not None
            self._http = httpx2.AsyncClient(headers=dict(target.headers))
            transport = streamable_http_client(target.url, http_client=self._http)
            self._client = Client(transport, read_timeout_seconds=timeout)
        try:
            return await self._client.__aenter__()
        except BaseException:
            await self._close_http()
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._client is not None:
                await self._client.__aexit__(None, None, None)
        finally:
            await self._close_http()

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.aclose()


def _describe(exc: BaseException) -> str:
    """One line for logs and users: the innermost useful message of (grouped) errors."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
