"""``personae release``: a gray release of a character's new version (docs/experiments.md)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from personae import errors
from personae.app.experiments import release as release_experiment
from personae.cli.shared import ConfigDir, read_settings


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
    settings = read_settings(config_dir)
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
