"""``personae memory``: what long-term memory holds of a user, forgetting it, and embedding the
knowledge documents and memory again."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personae import errors
from personae.app.memory import open_memory_admin
from personae.cli.shared import ConfigDir, cli_audit, read_settings
from personae.core.memory.scope import private_partitions

memory_cli = typer.Typer(help="What long-term memory holds of a user.", no_args_is_help=True)

MemoryUser = Annotated[str, typer.Argument(help="The user's id.")]
MemoryCharacter = Annotated[
    str | None, typer.Option(help="Only what is remembered with this character.")
]


@memory_cli.command("show")
def memory_show(
    user: MemoryUser,
    character: MemoryCharacter = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """Everything remembered of a user, newest first per character."""
    settings = read_settings(config_dir)

    async def read() -> list[dict[str, str]]:
        async with open_memory_admin(settings) as (conversations, memory, _):
            rows = []
            for partition in await private_partitions(conversations, user, character):
                for item in await memory.list_items(partition, limit=100_000):
                    rows.append(
                        {
                            "id": item.id,
                            "character": partition.character_id,
                            "kind": item.kind,
                            "created": item.created_at.isoformat(timespec="seconds"),
                            "text": item.text,
                        }
                    )
            return rows

    rows = asyncio.run(read())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("id", "character", "kind", "created", "text")
    for row in rows:
        table.add_row(*row.values())
    Console().print(table)


@memory_cli.command("forget")
def memory_forget(
    user: MemoryUser,
    character: MemoryCharacter = None,
    item: Annotated[str | None, typer.Option(help="Only this item (an id from show).")] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Forget what is remembered of a user: one item, one character's, or everything."""
    settings = read_settings(config_dir)

    async def forget() -> int:
        async with open_memory_admin(settings) as (conversations, memory, audit):
            partitions = await private_partitions(conversations, user, character)
            if item is not None:
                found = await memory.get([item])
                if not found or found[0].partition not in partitions:
                    raise typer.BadParameter(f"{user!r} has no memory item {item!r}")
                count = await memory.delete(found[0].partition, [item])
            else:
                count = sum([await memory.delete(p) for p in partitions])
            target = item or character or "*"
            await audit.record([cli_audit("memory.forget", target, user=user, items=str(count))])
            return count

    typer.echo(f"forgot {asyncio.run(forget())} memory item(s) of {user}")


@memory_cli.command("reindex")
def memory_reindex(
    character: Annotated[
        str | None,
        typer.Option(
            help="Only this character's documents ('*': the shared ones), or with"
            " --user, only that user's memory with it."
        ),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's memory.")] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Re-read the knowledge documents and embed again: everything the current embedder has
    no vector for (after a change of model: everything), or one partition whatever its vector."""
    from personae.app.knowledge import open_reindexing, reindex
    from personae.app.memory import build_embedder

    settings = read_settings(config_dir)

    def progress(done: int, total: int | None) -> None:
        typer.echo(f"embedded {done}" + (f"/{total}" if total is not None else ""))

    async def run() -> None:
        embedder = build_embedder(settings.memory)
        async with open_reindexing(settings, embedder) as work:
            result = await reindex(
                work,
                user=user,
                character=character,
                batch_size=settings.memory.batch_size,
                progress=progress,
            )
        if result.documents is not None:
            d = result.documents
            typer.echo(
                f"documents: {d.indexed} indexed, {d.unchanged} unchanged, {d.removed} removed,"
                f" {d.failed} unreadable; chunks: {d.chunks_added} added,"
                f" {d.chunks_removed} removed"
            )
        typer.echo(f"embedded {result.embedded} memory item(s)")
        if result.documents is not None and result.documents.failed:
            raise typer.Exit(1)  # the log names each unreadable document

    try:
        asyncio.run(run())
    except errors.PersonaeError as exc:  # no embedder, an unknown user
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
