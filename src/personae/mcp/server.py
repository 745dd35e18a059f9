"""Personae's tools as an MCP server (the SDK's low-level ``Server``): listing and calling
``tools.PersonaeTools``, for whichever transport serves it (``http``, ``stdio``).

A transport says who the caller is (``Identify``); a call without a caller is refused. A
tool's failure is an error result (``isError``) with the error's code and message, as MCP
asks, so a model on the other side can read it; only a refused caller is a protocol error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_REQUEST,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)

from personae.core.types import Principal
from personae.errors import NotAuthenticated, PersonaeError
from personae.mcp.tools import TOOLS, McpPorts, PersonaeTools, ToolAnswer

log = structlog.get_logger(__name__)

SERVER_NAME = "personae"
Context = ServerRequestContext[Any, Any]
#: The caller of a request and its address: raises ``NotAuthenticated`` when there is none.
Identify = Callable[[Context], Awaitable[tuple[Principal, str | None]]]


def build_server(ports: McpPorts, identify: Identify, *, version: str = "") -> Server[Any]:
    tools = PersonaeTools(ports)
    listed = [
        Tool(name=t.name, description=t.description, input_schema=dict(t.parameters)) for t in TOOLS
    ]

    async def list_tools(ctx: Context, params: PaginatedRequestParams | None) -> ListToolsResult:
        await _caller(identify, ctx)
        return ListToolsResult(tools=listed)

    async def call_tool(ctx: Context, params: CallToolRequestParams) -> CallToolResult:
        principal, client = await _caller(identify, ctx)
        try:
            answer = await tools.call(params.name, params.arguments or {}, principal, client)
        except PersonaeError as exc:
            log.info("mcp tool refused", tool=params.name, code=exc.code, error=exc.message)
            return _error(f"{exc.code}: {exc.message}")
        except Exception:
            log.exception("mcp tool failed", tool=params.name)
            return _error("internal_error: the tool failed")
        return _answer(answer)

    return Server(SERVER_NAME, version=version, on_list_tools=list_tools, on_call_tool=call_tool)


async def _caller(identify: Identify, ctx: Context) -> tuple[Principal, str | None]:
    try:
        return await identify(ctx)
    except NotAuthenticated as exc:
        raise MCPError(INVALID_REQUEST, f"{exc.code}: {exc.message}") from exc


def _answer(answer: ToolAnswer) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(text=answer.text)], structured_content=dict(answer.data)
    )


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], is_error=True)
