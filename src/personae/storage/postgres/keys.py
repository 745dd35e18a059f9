"""``KeyStore`` on PostgreSQL: the SQLite store's API keys (the SHA-256 of each secret, never
the secret), shared by every node, so a key issued on one authenticates on all."""

from __future__ import annotations

from datetime import datetime

from psycopg.rows import DictRow

from personae.core.ports import KeyStore
from personae.core.types import AccessRole, ApiKey
from personae.errors import Conflict
from personae.storage.postgres.database import Conn
from personae.storage.postgres.resource import PostgresResource

_FIELDS = "id, secret_hash, role, subject, tenant, created_at, expires_at, revoked_at"
_COLUMNS = f"SELECT {_FIELDS} FROM api_keys"


class PostgresKeyStore(PostgresResource, KeyStore):
    async def add(self, key: ApiKey) -> None:
        async def work(conn: Conn) -> bool:
            cursor = await conn.execute(
                f"INSERT INTO api_keys ({_FIELDS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    key.id,
                    key.secret_hash,
                    key.role.value,
                    key.subject,
                    key.tenant,
                    key.created_at,
                    key.expires_at,
                    key.revoked_at,
                ),
            )
            return cursor.rowcount == 1

        if not await self._db.run("store the API key", work):
            raise Conflict(f"an API key with id {key.id!r} exists", key_id=key.id)

    async def get(self, key_id: str) -> ApiKey | None:
        async def work(conn: Conn) -> ApiKey | None:
            cursor = await conn.execute(f"{_COLUMNS} WHERE id = %s", (key_id,))
            row = await cursor.fetchone()
            return None if row is None else _key_of(row)

        return await self._db.read("read the API key", work)

    async def all_keys(self) -> list[ApiKey]:
        async def work(conn: Conn) -> list[ApiKey]:
            # Ids in byte order, as SQLite compares text, whatever the database's collation.
            cursor = await conn.execute(f'{_COLUMNS} ORDER BY created_at, id COLLATE "C"')
            return [_key_of(row) for row in await cursor.fetchall()]

        return await self._db.read("list the API keys", work)

    async def revoke(self, key_id: str, at: datetime) -> ApiKey | None:
        async def work(conn: Conn) -> ApiKey | None:
            # One statement: two nodes revoking at once keep the first time, as on SQLite.
            cursor = await conn.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s"
                f" RETURNING {_FIELDS}",
                (at, key_id),
            )
            row = await cursor.fetchone()
            return None if row is None else _key_of(row)

        return await self._db.run("revoke the API key", work)

    async def any_created(self) -> bool:
        async def work(conn: Conn) -> bool:
            cursor = await conn.execute("SELECT 1 FROM api_keys LIMIT 1")
            return await cursor.fetchone() is not None

        return await self._db.read("look for API keys", work)


def _key_of(row: DictRow) -> ApiKey:
    values = dict(row)
    values["role"] = AccessRole(values["role"])
    return ApiKey(**values)
