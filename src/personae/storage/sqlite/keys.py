"""``KeyStore`` on SQLite: API keys by id, each with the SHA-256 of its secret (never the
secret), role, owner, tenant, expiry and revocation time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlean

from personae.core.ports import KeyStore
from personae.core.types import AccessRole, ApiKey
from personae.errors import Conflict
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text, with_times

_COLUMNS = (
    "SELECT id, secret_hash, role, subject, tenant, created_at, expires_at, revoked_at"
    " FROM api_keys"
)


class SqliteKeyStore(SqliteResource, KeyStore):
    async def add(self, key: ApiKey) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO api_keys (id, secret_hash, role, subject, tenant, created_at,"
                    " expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.id,
                        key.secret_hash,
                        key.role.value,
                        key.subject,
                        key.tenant,
                        as_text(key.created_at),
                        _text_or_none(key.expires_at),
                        _text_or_none(key.revoked_at),
                    ),
                )

        try:
            await self._db.run("store the API key", work)
        except Exception as exc:
            if isinstance(exc.__cause__, sqlean.IntegrityError):
                raise Conflict(f"an API key with id {key.id!r} exists", key_id=key.id) from exc
            raise

    async def get(self, key_id: str) -> ApiKey | None:
        def work(conn: Connection) -> ApiKey | None:
            row = conn.execute(f"{_COLUMNS} WHERE id = ?", (key_id,)).fetchone()
            return None if row is None else _key_of(row)

        return await self._db.read("read the API key", work)

    async def all_keys(self) -> list[ApiKey]:
        def work(conn: Connection) -> list[ApiKey]:
            rows = conn.execute(f"{_COLUMNS} ORDER BY created_at, id").fetchall()
            return [_key_of(row) for row in rows]

        return await self._db.read("list the API keys", work)

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        def work(conn: Connection) -> ApiKey | None:
            with transaction(conn):
                conn.execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                    (as_text(at), key_id),
                )
                row = conn.execute(f"{_COLUMNS} WHERE id = ?", (key_id,)).fetchone()
            return None if row is None else _key_of(row)

        return await self._db.run("revoke the API key", work)

    async def any_created(self) -> bool:
        def work(conn: Connection) -> bool:
            return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

        return await self._db.read("look for API keys", work)


def _text_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else as_text(moment)


def _key_of(row: Any) -> ApiKey:
    values = with_times(row, "created_at")
    for name in ("expires_at", "revoked_at"):
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["role"] = AccessRole(values["role"])
    return ApiKey(**values)
