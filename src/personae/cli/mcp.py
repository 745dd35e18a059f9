"""``personae mcp``: Personae's MCP tools over stdin and stdout (docs/mcp.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from personae.app.mcp import serve_mcp_stdio
from personae.cli.shared import ConfigDir, read_settings
from personae.observability.logging import configure_logging

mcp_cli = typer.Typer(help="Personae as an MCP server (docs/mcp.md).", no_args_is_help=True)


@mcp_cli.command("serve")
def mcp_serve(
    api_key: Annotated[
        str | None,
        typer.Option(envvar="PERSONAE_API_KEY", help="Whom the tools act as (a server with keys)."),
    ] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Serve Personae's MCP tools (chat, list_characters, memory_search, memory_read) over
    stdin and stdout, for MCP hosts that start servers as subprocesses. Over HTTP they are at
    /mcp of `personae serve`."""
    settings = read_settings(config_dir)
    configure_logging(settings.log_level, log_content=settings.log_content)  # to stderr
    serve_mcp_stdio(settings, api_key)
