"""``personae trace`` and ``personae replay``: a recorded turn, and a conversation re-run with
other settings (docs/replay.md)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from personae import errors
from personae.app import open_runtime
from personae.app.replay import read_turn_record, report_path
from personae.cli.shared import ConfigDir, read_settings
from personae.core.replay import ReplayReport
from personae.core.turn_record import record_data
from personae.replay.html import render_html
from personae.replay.terminal import render_terminal
from personae.replay.trace import render_trace

TurnId = Annotated[str, typer.Argument(help="The turn: its reply's message id.")]


def trace_command(
    turn_id: TurnId,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    config_dir: ConfigDir = None,
) -> None:
    """A recorded turn (its id is the reply's message id): the prompt as sent, the lore and
    memory in it, the route through the backends, and the stage timings (docs/replay.md)."""
    settings = read_settings(config_dir)
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
    settings = read_settings(config_dir)
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
