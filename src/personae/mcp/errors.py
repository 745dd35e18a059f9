"""What goes wrong when talking to another MCP server."""

from __future__ import annotations

from personae.errors import PersonaeError


class McpUnavailable(PersonaeError):
    """The server could not be reached, died, or is waiting out its reconnect backoff."""

    code = "mcp_unavailable"
    retryable = True


class McpTimeout(PersonaeError):
    """The server did not answer in time (to connect, or to one tool call)."""

    code = "mcp_timeout"
    retryable = True
