"""``personae chat``: a character in the terminal, in-process or through a running server."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from personae import errors
from personae.app import open_runtime
from personae.chat_console import LocalTarget, RemoteTarget, run_chat
from personae.cli.shared import ConfigDir, read_settings
from personae.client import ClientError, PersonaeClient
from personae.observability.logging import configure_logging
from personae.settings import Settings


def chat(
    character: Annotated[str, typer.Argument(help="The character's id.")],
    url: Annotated[
        str | None,
        typer.Option(envvar="PERSONAE_URL", help="A running server; default: in-process."),
    ] = None,
    user: Annotated[str, typer.Option(help="Who you are to the character.")] = "cli-user",
    api_key: Annotated[
        str | None, typer.Option(envvar="PERSONAE_API_KEY", help="For a server with keys.")
    ] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Chat with a character in the terminal, the reply streaming as it is generated."""
    console = Console()
    try:
        if url:
            asyncio.run(_chat_remote(url, api_key, character, user, console))
        else:
            settings = read_settings(config_dir)
            configure_logging("warning")
            asyncio.run(_chat_local(settings, character, user, console))
    except (errors.PersonaeError, ClientError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print()


async def _chat_remote(
    url: str, token: str | None, character: str, user: str, console: Console
) -> None:
    async with PersonaeClient(url, user=user, token=token) as client:
        await run_chat(RemoteTarget(client, character=character), name=character, console=console)


async def _chat_local(settings: Settings, character: str, user: str, console: Console) -> None:
    async with open_runtime(settings) as runtime:
        name = runtime.catalog.get(character).name
        target = LocalTarget(runtime.service, character=character, user=user)
        await run_chat(target, name=name, console=console)
