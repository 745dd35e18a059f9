"""What more than one command uses: the ``--config-dir`` option, the settings it names, and the
audit entries of changes made from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personae import errors
from personae.core.types import AuditEntry
from personae.settings import Settings, load_settings

ConfigDir = Annotated[
    Path | None, typer.Option(help="Folder with personae.yaml (default: working directory).")
]


def read_settings(config_dir: Path | None, **overrides: object) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_settings(config_dir, **given)
    except errors.PersonaeError as exc:
        raise typer.BadParameter(str(exc)) from exc


def cli_audit(action: str, target: str, **details: str) -> AuditEntry:
    return AuditEntry(action=action, actor="cli", target=target, details=dict(details))
