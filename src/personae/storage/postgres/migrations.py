"""Numbered SQL migrations for PostgreSQL, applied in order at open and recorded in
``schema_migrations``.

Files are ``migrations/NNNN_name.sql``, numbered from 0001 without gaps. All that is missing
is applied in one transaction that first takes a transaction-level advisory lock, so when
several processes start at once one migrates and the others wait, then find nothing to do.
A database that records a version this code does not know is refused: an older node must not
write into a newer schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from personae.errors import StorageError
from personae.storage.sqlite.migrations import Migration
from personae.storage.sqlite.migrations import load_migrations as load_migration_files

#: The advisory lock every node takes around migrating ("personae" in ASCII).
MIGRATION_LOCK = 0x706572736F6E6165

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def load_migrations() -> list[Migration]:
    """The migrations shipped in this package, in order (read as SQLite's are)."""
    return load_migration_files("personae.storage.postgres")


async def migrate(
    conn: AsyncConnection[Any], migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply what is missing, in order, in one transaction; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    known = max((m.version for m in migrations), default=0)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(_CREATE_TABLE)
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        applied = {_first(row) for row in await cursor.fetchall()}
        newest = max(applied, default=0)
        if newest > known:
            raise StorageError(
                f"the database schema is at version {newest}, newer than this version of "
                f"Personae supports ({known}); upgrade Personae or use another database",
                schema_version=newest,
                supported_version=known,
            )
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            # No parameters: the server takes the file's statements as one script.
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            done.append(migration.version)
    return done


def _first(row: Any) -> int:
    # Rows are tuples or dicts depending on the connection's row factory.
    value = next(iter(row.values())) if isinstance(row, dict) else row[0]
    return int(value)
