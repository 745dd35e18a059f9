"""``personae keys``: create, list and revoke API keys, straight on the key store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from personae import errors
from personae.app.security import open_key_admin
from personae.cli.shared import ConfigDir, cli_audit, read_settings
from personae.core.types import DEFAULT_TENANT, AccessRole, ApiKey
from personae.security.api_keys import parse_duration

keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


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
    settings = read_settings(config_dir)

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
            await audit.record([cli_audit("key.create", key.id, role=role.value, tenant=tenant)])
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
    settings = read_settings(config_dir)

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
    settings = read_settings(config_dir)

    async def revoke() -> None:
        async with open_key_admin(settings) as (registry, audit):
            await registry.revoke(key_id)
            await audit.record([cli_audit("key.revoke", key_id)])

    try:
        asyncio.run(revoke())
    except errors.NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {key_id}")
