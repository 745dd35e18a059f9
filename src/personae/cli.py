"""The ``personae`` command: serve, chat, characters."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from openai import AsyncOpenAI
from rich.console import Console
from rich.table import Table

from personae import errors
from personae.app import build_app, load_catalog, open_runtime
from personae.characters.loader import load_characters_dir
from personae.chat_console import LocalTarget, RemoteTarget, run_chat
from personae.observability.logging import configure_logging
from personae.settings import Settings, load_settings

cli = typer.Typer(help="Personae: a self-hosted gateway for AI characters.", no_args_is_help=True)
characters_cli = typer.Typer(help="Inspect the characters folder.", no_args_is_help=True)
cli.add_typer(characters_cli, name="characters")

ConfigDir = Annotated[
    Path | None, typer.Option(help="Folder with personae.yaml (default: working directory).")
]


def _settings(config_dir: Path | None, **overrides: object) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_settings(config_dir, **given)
    except errors.PersonaeError as exc:
        raise typer.BadParameter(str(exc)) from exc


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Run the server."""
    settings = _settings(config_dir, host=host, port=port)
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    _AnnouncingServer(config).run()


class _AnnouncingServer(uvicorn.Server):
    """Says where it listens once the sockets are bound (with ``--port 0``, the real port)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                typer.echo(f"personae listening on http://{host}:{port}", err=True)


@cli.command()
def chat(
    character: Annotated[str, typer.Argument(help="The character's id.")],
    url: Annotated[
        str | None,
        typer.Option(envvar="PERSONAE_URL", help="A running server; default: in-process."),
    ] = None,
    user: Annotated[str, typer.Option(help="Who you are to the character.")] = "cli-user",
    api_key: Annotated[str, typer.Option(envvar="PERSONAE_API_KEY")] = "none",
    config_dir: ConfigDir = None,
) -> None:
    """Chat with a character in the terminal, the reply streaming as it is generated."""
    console = Console()
    try:
        if url:
            asyncio.run(_chat_remote(url, api_key, character, user, console))
        else:
            settings = _settings(config_dir)
            configure_logging("warning")
            asyncio.run(_chat_local(settings, character, user, console))
    except errors.PersonaeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print()


async def _chat_remote(url: str, key: str, character: str, user: str, console: Console) -> None:
    async with AsyncOpenAI(base_url=url.rstrip("/") + "/v1", api_key=key) as client:
        await client.models.retrieve(character)  # a clear error now rather than mid-chat
        await run_chat(
            RemoteTarget(client, character=character, user=user), name=character, console=console
        )


async def _chat_local(settings: Settings, character: str, user: str, console: Console) -> None:
    async with open_runtime(settings) as runtime:
        name = runtime.catalog.get(character).name
        target = LocalTarget(runtime.service, character=character, user=user)
        await run_chat(target, name=name, console=console)


@characters_cli.command("list")
def characters_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """List the characters that load."""
    catalog = load_catalog(_settings(config_dir))
    rows = [{"id": c.id, "name": c.name, "version": c.version} for c in catalog.all()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "version")
    for row in rows:
        table.add_row(row["id"], row["name"], row["version"])
    Console().print(table)


@characters_cli.command("check")
def characters_check(config_dir: ConfigDir = None) -> None:
    """Validate every character file; exit non-zero if any is invalid."""
    settings = _settings(config_dir)
    report = load_characters_dir(settings.characters_dir)
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(f"{len(report.characters)} valid, {len(report.errors)} invalid")
    if report.errors:
        raise typer.Exit(1)


def main() -> None:
    cli()
