"""``personae characters``: list, check, import and export the character files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personae import errors
from personae.characters.cards import ExportFormat, v2_losses
from personae.characters.library import export_character, import_files
from personae.characters.loader import LoadReport, load_characters_dir
from personae.cli.shared import ConfigDir, read_settings

characters_cli = typer.Typer(help="Inspect the characters folder.", no_args_is_help=True)

CharactersDir = Annotated[
    Path | None,
    typer.Option("--dir", help="The characters folder (default: characters_dir from settings)."),
]


def _characters_dir(config_dir: Path | None, directory: Path | None) -> Path:
    return directory if directory is not None else read_settings(config_dir).characters_dir


def _load_report(config_dir: Path | None, directory: Path | None) -> LoadReport:
    """The characters and, when it exists, the configured lorebooks folder attached to them
    (a broken lorebook is reported like a broken character)."""
    lorebooks = read_settings(config_dir).lorebooks_dir
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
