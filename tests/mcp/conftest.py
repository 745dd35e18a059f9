from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from personae.mcp.client import Backoff, McpConnection, McpTarget

ORDER_SERVER = Path(__file__).with_name("order_server.py")


def order_target(name: str = "orders", **changes: object) -> McpTarget:
    """The test MCP server (tests/mcp/order_server.py) as a stdio subprocess."""
    fields: dict[str, object] = {
        "name": name,
        "command": sys.executable,
        "args": (str(ORDER_SERVER),),
        "connect_timeout_s": 30.0,
        "call_timeout_s": 10.0,
    }
    fields.update(changes)
    return McpTarget(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def orders() -> AsyncIterator[McpConnection]:
    """A connection to the order server that reconnects at once (no backoff)."""
    connection = McpConnection(order_target(), backoff=Backoff(0.0, 0.0))
    yield connection
    await connection.close()
