"""A tiny MCP server written with the official SDK, run as a stdio subprocess by the tests:
a shop's order lookup, plus tools that misbehave on purpose (hang, die)."""

from __future__ import annotations

import os
import time

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("orders", log_level="WARNING")

ORDERS = {
    "A-1001": {"status": "shipped", "carrier": "DHL", "eta": "2026-12-02"},
    "A-1002": {"status": "packing", "carrier": None, "eta": "2026-12-05"},
}


@server.tool()
def lookup_order(order_id: str) -> dict[str, object]:
    """Where an order is: its status, carrier and expected delivery date."""
    order = ORDERS.get(order_id.strip().upper())
    if order is None:
        raise ToolError(f"no order {order_id!r}")
    return {"order_id": order_id.strip().upper(), **order}


@server.tool()
def slow_echo(text: str, seconds: float = 30.0) -> str:
    """Echo the text after a while (a tool that hangs past any sane timeout)."""
    time.sleep(seconds)
    return text


@server.tool()
def crash() -> str:
    """Kill the server process, as a server that dies mid-call would."""
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
