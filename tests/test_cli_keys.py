"""``personae keys create|list|revoke`` against a real database file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlean
from typer.testing import CliRunner

from personae.cli import cli
from personae.errors import NotAuthenticated
from personae.security.api_keys import KeyRegistry
from personae.security.auth import KeyAuthenticator
from personae.settings import Settings
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.keys import SqliteKeyStore


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["keys", *args, "--config-dir", str(config)])
    return result.exit_code, result.stdout, result.stderr


async def authenticate(db: Path, token: str) -> str:
    async with SqliteKeyStore(db) as store:
        principal = await KeyAuthenticator(registry=KeyRegistry(store)).authenticate(token)
        return f"{principal.role}:{principal.tenant}:{principal.subject}"


async def audit_actions(db: Path) -> list[tuple[str, str, str | None]]:
    async with SqliteAuditLog(db) as log:
        return [(e.action, e.actor, e.target) for e in await log.query()]


def test_create_list_revoke(config: Path) -> None:
    db = Settings(data_dir=config / "data").database_path
    code, out, err = run(
        config,
        "create",
        "--role",
        "service",
        "--user",
        "bot",
        "--tenant",
        "acme",
        "--expires",
        "30d",
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("pk_")
    assert "cannot be shown again" in err
    assert asyncio.run(authenticate(db, token)) == "service:acme:bot"
    conn = sqlean.connect(str(db))
    try:
        assert token.split("_", 2)[2] not in repr(conn.execute("SELECT * FROM api_keys").fetchall())
    finally:
        conn.close()
    code, out, _ = run(config, "list", "--json")
    [row] = json.loads(out)
    assert row["subject"] == "bot"
    assert row["expires_at"] is not None
    assert row["revoked_at"] is None
    code, out, _ = run(config, "revoke", row["id"])
    assert code == 0
    assert out.strip() == f"revoked {row['id']}"
    with pytest.raises(NotAuthenticated, match="revoked"):
        asyncio.run(authenticate(db, token))
    assert asyncio.run(audit_actions(db)) == [
        ("key.create", "cli", row["id"]),
        ("key.revoke", "cli", row["id"]),
    ]


def test_bad_input_is_refused_and_stores_nothing(config: Path) -> None:
    assert run(config, "create", "--role", "user")[0] != 0  # a user key names its user
    assert run(config, "create", "--role", "root", "--user", "x")[0] != 0
    assert run(config, "create", "--role", "user", "--user", "a/b")[0] != 0
    assert run(config, "create", "--role", "user", "--user", "a", "--expires", "soon")[0] != 0
    code, out, _ = run(config, "list", "--json")
    assert json.loads(out) == []
    code, _, err = run(config, "revoke", "ffffffff")
    assert code == 1
    assert "unknown API key" in err
