"""The ``personae`` command: serve, chat, characters, keys."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from personae import errors
from personae.app import build_app, open_runtime
from personae.app.experiments import release as release_experiment
from personae.app.mcp import serve_mcp_stdio
from personae.app.memory import open_memory_admin
from personae.app.replay import read_turn_record, report_path
from personae.app.security import open_key_admin
from personae.characters.cards import ExportFormat, v2_losses
from personae.characters.library import export_character, import_files
from personae.characters.loader import LoadReport, load_characters_dir
from personae.chat_console import LocalTarget, RemoteTarget, run_chat
from personae.client import ClientError, PersonaeClient
from personae.core.memory.scope import private_partitions
from personae.core.replay import ReplayReport
from personae.core.turn_record import record_data
from personae.core.types import DEFAULT_TENANT, AccessRole, ApiKey, AuditEntry
from personae.fakellm.command import fake_llm
from personae.loadgen.command import bench
from personae.observability.logging import configure_logging
from personae.replay.html import render_html
from personae.replay.terminal import render_terminal
from personae.replay.trace import render_trace
from personae.security.api_keys import parse_duration
from personae.settings import Settings, load_settings

cli = typer.Typer(help="Personae: a self-hosted gateway for AI characters.", no_args_is_help=True)
characters_cli = typer.Typer(help="Inspect the characters folder.", no_args_is_help=True)
cli.add_typer(characters_cli, name="characters")
keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
memory_cli = typer.Typer(help="What long-term memory holds of a user.", no_args_is_help=True)
cli.add_typer(memory_cli, name="memory")
mcp_cli = typer.Typer(help="Personae as an MCP server (docs/mcp.md).", no_args_is_help=True)
cli.add_typer(mcp_cli, name="mcp")
cli.command("fake-llm")(fake_llm)  # personae/fakellm: a fake OpenAI-compatible backend
cli.command("bench")(bench)  # personae/loadgen: the load generator

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
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes on one port; more than 1 needs coordination: redis."),
    ] = 1,
    config_dir: ConfigDir = None,
) -> None:
    """Run the server."""
    settings = _settings(config_dir, host=host, port=port)
    if workers > 1 and settings.coordination.backend == "local":
        raise typer.BadParameter(
            f"{workers} workers need coordination: redis (docs/scale-out.md): with "
            "coordination: local each process would keep its own conversation locks and "
            "events, and two devices of one user could see two different conversations",
            param_hint="--workers",
        )
    configure_logging(settings.log_level, log_content=settings.log_content)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,  # ours is written once a response ends (request_context.py)
        "lifespan": "on",
        "ws": "websockets-sansio",
        "ws_max_size": settings.realtime.max_frame_bytes,
        # Compression costs ~43 KiB of zlib state per connection; chat frames are small.
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": int(settings.realtime.shutdown_grace_s) + 5,
        "ssl_certfile": settings.tls_certfile,
        "ssl_keyfile": settings.tls_keyfile,
    }
    if workers == 1:
        _AnnouncingServer(uvicorn.Config(build_app(settings), **options)).run()
        return
    # Each worker builds its app from the same settings (app/factory.py reads them again).
    if config_dir is not None:
        os.environ["PERSONAE_CONFIG_DIR"] = str(config_dir)
    typer.echo(f"personae: {workers} workers on {settings.host}:{settings.port}", err=True)
    uvicorn.run("personae.app.factory:create_app", factory=True, workers=workers, **options)


class _AnnouncingServer(uvicorn.Server):
    """Says where it listens once the sockets are bound (with ``--port 0``, the real port)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # Everything loaded so far lives as long as the process: keep it out of every future
        # collection, and collect less often. With thousands of connections alive, a full
        # collection otherwise stalls the loop for hundreds of milliseconds at a time.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                scheme = "https" if self.config.is_ssl else "http"
                typer.echo(f"personae listening on {scheme}://{host}:{port}", err=True)


@cli.command()
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
            settings = _settings(config_dir)
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


CharactersDir = Annotated[
    Path | None,
    typer.Option("--dir", help="The characters folder (default: characters_dir from settings)."),
]


def _characters_dir(config_dir: Path | None, directory: Path | None) -> Path:
    return directory if directory is not None else _settings(config_dir).characters_dir


def _load_report(config_dir: Path | None, directory: Path | None) -> LoadReport:
    """The characters and, when it exists, the configured lorebooks folder attached to them
    (a broken lorebook is reported like a broken character)."""
    lorebooks = _settings(config_dir).lorebooks_dir
    return load_characters_dir(
        _characters_dir(config_dir, directory),
        lorebooks=lorebooks if lorebooks.is_dir() else None,
    )


def _problem(error: errors.CharacterDefinitionError) -> str:
    return error.message.removeprefix(f"{error.source}: ")


@characters_cli.command("list")
def characters_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    directory: CharactersDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """List every character file: id, name, version, format and whether it loads."""
    report = _load_report(config_dir, directory)
    rows: list[dict[str, str | None]] = [
        {
            "id": c.id,
            "name": c.name,
            "version": c.version,
            "format": c.source_format,
            "container": c.source_container,
            "file": report.files[c.id].name,
            "status": "ok",
            "error": None,
        }
        for c in report.characters
    ]
    rows += [
        {
            "id": error.context.get("character_id"),
            "name": None,
            "version": None,
            "format": None,
            "container": None,
            "file": Path(error.source).name,
            "status": "error",
            "error": _problem(error),
        }
        for error in report.errors
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("id", "name", "version", "format", "file", "status")
    for row in rows:
        fmt = row["format"] if row["format"] == "yaml" else f"{row['format']} ({row['container']})"
        table.add_row(
            row["id"] or "-",
            row["name"] or "-",
            row["version"] or "-",
            fmt if row["format"] else "-",
            row["file"],
            "ok" if row["status"] == "ok" else "[red]error[/red]",
        )
    console = Console()
    console.print(table)
    for row in rows:
        if row["error"]:
            console.print(f"[red]{row['file']}[/red]: {row['error']}", highlight=False)


@characters_cli.command("check")
def characters_check(directory: CharactersDir = None, config_dir: ConfigDir = None) -> None:
    """Validate every character file; exit non-zero if any is invalid."""
    report = _load_report(config_dir, directory)
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    typer.echo(f"{len(report.characters)} valid, {len(report.errors)} invalid")
    if report.errors:
        raise typer.Exit(1)


@characters_cli.command("import")
def characters_import(
    files: Annotated[list[Path], typer.Argument(help="Character files: YAML, JSON, PNG, CHARX.")],
    force: Annotated[bool, typer.Option(help="Replace a character with the same id.")] = False,
    directory: CharactersDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Validate character files and copy them into the characters folder, as they are."""
    folder = _characters_dir(config_dir, directory)
    failed = 0
    for outcome in import_files(files, folder, force=force):
        if outcome.error is not None or outcome.character is None or outcome.target is None:
            failed += 1
            typer.echo(f"error: {outcome.error}", err=True)
            continue
        replaced = f" (replacing {outcome.replaced.name})" if outcome.replaced else ""
        typer.echo(f"imported {outcome.character.id} -> {outcome.target}{replaced}")
    if failed:
        raise typer.Exit(1)


@characters_cli.command("export")
def characters_export(
    character_id: Annotated[str, typer.Argument(help="The character's id.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="The file format.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    image: Annotated[
        Path | None, typer.Option(help="A PNG to put the card on (png format only).")
    ] = None,
    directory: CharactersDir = None,
    config_dir: ConfigDir = None,
) -> None:
    """Write a character as a V2 or V3 JSON card, a PNG card, a CHARX or native YAML."""
    if image is not None and fmt is not ExportFormat.PNG:
        raise typer.BadParameter("--image only applies to --format png")
    folder = _characters_dir(config_dir, directory)
    try:
        picture = image.read_bytes() if image is not None else None
        character, data = export_character(folder, character_id, fmt, image=picture)
        output.write_bytes(data)
    except (errors.PersonaeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if fmt is ExportFormat.V2 and (lost := v2_losses(character)):
        typer.echo(
            f"warning: V2 cards cannot hold {', '.join(lost)}; use v3 to keep them", err=True
        )
    typer.echo(f"exported {character.id} -> {output}")


def _key_row(key: ApiKey) -> dict[str, str | None]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    return {
        "id": key.id,
        "role": key.role.value,
        "subject": key.subject,
        "tenant": key.tenant,
        "created_at": when(key.created_at),
        "expires_at": when(key.expires_at),
        "revoked_at": when(key.revoked_at),
    }


def _cli_audit(action: str, target: str, **details: str) -> AuditEntry:
    return AuditEntry(action=action, actor="cli", target=target, details=dict(details))


@keys_cli.command("create")
def keys_create(
    role: Annotated[AccessRole, typer.Option(help="admin, user or service.")],
    user: Annotated[
        str | None, typer.Option(help="Whom the key is: a user, or the service's name.")
    ] = None,
    tenant: Annotated[str, typer.Option(help="The tenant it belongs to.")] = DEFAULT_TENANT,
    expires: Annotated[str | None, typer.Option(help="Lifetime such as 30d, 12h, 2w.")] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Create a key and print it: it is shown this once, only its hash is stored."""
    if role is AccessRole.USER and user is None:
        raise typer.BadParameter("a user key names its user (--user)")
    settings = _settings(config_dir)

    async def create() -> str:
        try:
            expires_at = datetime.now(UTC) + parse_duration(expires) if expires else None
        except errors.PersonaeError as exc:
            raise typer.BadParameter(str(exc)) from exc
        async with open_key_admin(settings) as (registry, audit):
            issued = await registry.issue(
                role=role, subject=user or role.value, tenant=tenant, expires_at=expires_at
            )
            key = issued.key
            await audit.record([_cli_audit("key.create", key.id, role=role.value, tenant=tenant)])
            return issued.token

    try:
        token = asyncio.run(create())
    except errors.InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(token)
    typer.echo("Keep it now: it is not stored and cannot be shown again.", err=True)


@keys_cli.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """Every key (ids, roles, owners, expiry, revocation; never secrets)."""
    settings = _settings(config_dir)

    async def read() -> list[ApiKey]:
        async with open_key_admin(settings) as (registry, _):
            return await registry.all_keys()

    rows = [_key_row(k) for k in asyncio.run(read())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "role", "subject", "tenant", "created", "expires", "revoked")
    for row in rows:
        table.add_row(*(value or "" for value in row.values()))
    Console().print(table)


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the 8 characters after pk_).")],
    config_dir: ConfigDir = None,
) -> None:
    """Revoke a key. A running server notices within ``security.key_cache_s`` seconds."""
    settings = _settings(config_dir)

    async def revoke() -> None:
        async with open_key_admin(settings) as (registry, audit):
            await registry.revoke(key_id)
            await audit.record([_cli_audit("key.revoke", key_id)])

    try:
        asyncio.run(revoke())
    except errors.NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id}")


def main() -> None:
    cli()


MemoryUser = Annotated[str, typer.Argument(help="The user's id.")]
MemoryCharacter = Annotated[
    str | None, typer.Option(help="Only what is remembered with this character.")
]


@cli.command("release")
def release_command(
    character: Annotated[str, typer.Argument(help="The character's id.")],
    version: Annotated[
        str | None, typer.Option(help="The new version's hash (or a unique prefix, 6+).")
    ] = None,
    percent: Annotated[
        float | None, typer.Option(min=0, max=100, help="Of the character's users.")
    ] = None,
    kill: Annotated[
        bool | None, typer.Option("--kill/--unkill", help="Everyone back to the old version.")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="The version control keeps (default: the previous).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(envvar="PERSONAE_URL", help="A running server's admin API.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="PERSONAE_API_KEY", help="An admin key for --url.")
    ] = None,
    config_dir: ConfigDir = None,
) -> None:
    """A gray release: the new version for --percent of the character's users, the old one
    for the rest; run again to ramp, --percent 0 or --kill to roll back (docs/experiments.md)."""
    settings = _settings(config_dir)
    try:
        spec = asyncio.run(
            release_experiment(
                settings,
                character,
                url=url,
                api_key=api_key,
                version=version,
                percent=percent,
                killed=kill,
                control_version=control,
            )
        )
    except errors.PersonaeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(spec, indent=2))


@memory_cli.command("show")
def memory_show(
    user: MemoryUser,
    character: MemoryCharacter = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """Everything remembered of a user, newest first per character."""
    settings = _settings(config_dir)

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
    settings = _settings(config_dir)

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
            await audit.record([_cli_audit("memory.forget", target, user=user, items=str(count))])
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

    settings = _settings(config_dir)

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
    settings = _settings(config_dir)
    configure_logging(settings.log_level, log_content=settings.log_content)  # to stderr
    serve_mcp_stdio(settings, api_key)


TurnId = Annotated[str, typer.Argument(help="The turn: its reply's message id.")]


@cli.command("trace")
def trace_command(
    turn_id: TurnId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """A recorded turn (its id is the reply's message id): the prompt as sent, the lore and
    memory in it, the route through the backends, and the stage timings (docs/replay.md)."""
    settings = _settings(config_dir)
    record = asyncio.run(read_turn_record(settings, turn_id))
    if record is None:
        typer.echo(
            f"no record of turn {turn_id!r}: only a sample of conversations is recorded"
            " (replay.record_rate)",
            err=True,
        )
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(record_data(record), indent=2, ensure_ascii=False))
        return
    render_trace(record, Console())


@cli.command("replay")
def replay_command(
    conversation: Annotated[str, typer.Option(help="The conversation to replay.")],
    variant: Annotated[
        str | None, typer.Option(help="An experiment's variant: EXPERIMENT:VARIANT.")
    ] = None,
    character_version: Annotated[
        str | None, typer.Option(help="A kept character version (hash or prefix).")
    ] = None,
    route: Annotated[str | None, typer.Option(help="Backends, in fallback order: a,b.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="A generation parameter: temperature=0.2.")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
    config_dir: ConfigDir = None,
) -> None:
    """Re-run a conversation's user messages with other settings, on a scratch store (the
    conversation is not touched), and compare: a table here, the whole report in HTML."""
    settings = _settings(config_dir)
    console = Console()

    async def run() -> ReplayReport:
        async with open_runtime(settings) as runtime:
            if runtime.replays is None:  # open_runtime always wires them; a guard for mypy
                raise errors.ConfigurationError("replays are not available")
            plan = runtime.replays.plan(
                conversation,
                variant=variant,
                character_version=character_version,
                route=route,
                params=param or [],
            )
            return await runtime.replays.run(plan)

    try:
        report = asyncio.run(run())
    except errors.PersonaeError as exc:
        typer.echo(f"replay failed: {exc}", err=True)
        raise typer.Exit(1) from None
    render_terminal(report, console)
    path = html or report_path(settings, conversation, datetime.now(UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    console.print(f"\nHTML report: {path}")
