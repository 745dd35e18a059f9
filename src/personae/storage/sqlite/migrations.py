"""Numbered SQL migrations, applied in order at open and recorded in ``schema_migrations``.

Files are ``migrations/NNNN_name.sql``, numbered from 0001 without gaps. Each is applied in
its own transaction together with its ``schema_migrations`` row, so a migration is either
wholly applied and recorded or not at all. Migration files must not contain BEGIN/COMMIT.
A database that records a version this code does not know is refused: an older server must
not write into a newer schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import sqlean

from personae.errors import StorageError
from personae.storage.sqlite.connection import Connection, transaction

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str = "personae.storage.sqlite") -> list[Migration]:
    """The migrations shipped in ``package``'s ``migrations`` folder, in order (PostgreSQL's
    come through here too)."""
    folder = resources.files(package) / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StorageError(f"migrations are not numbered 1..{len(found)} without gaps")
    return found


def split_statements(sql: str) -> Iterator[str]:
    """Split a script into single statements.

    ``executescript`` would COMMIT the surrounding transaction first, so we execute statement
    by statement; ``complete_statement`` knows about strings, comments and trigger bodies.
    """
    pending = ""
    *pieces, last = sql.split(";")
    for piece in pieces:
        pending += piece + ";"
        if sqlean.complete_statement(pending):
            yield pending.strip()
            pending = ""
    # Whitespace or comments after the last ';', or a statement missing its final ';'.
    rest = (pending + last).strip()
    if rest:
        yield rest


def applied_versions(conn: Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: Connection, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply what is missing, in order; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    conn.execute(_CREATE_TABLE)
    known = max((m.version for m in migrations), default=0)
    newest = max(applied_versions(conn), default=0)
    if newest > known:
        raise StorageError(
            f"the database schema is at version {newest}, newer than this version of Personae "
            f"supports ({known}); upgrade Personae or use another database file",
            schema_version=newest,
            supported_version=known,
        )
    applied: list[int] = []
    for migration in migrations:
        if _apply(conn, migration):
            applied.append(migration.version)
    return applied


def _apply(conn: Connection, migration: Migration) -> bool:
    with transaction(conn):
        # Checked under the write lock: another process may have just applied it.
        if migration.version in applied_versions(conn):
            return False
        for statement in split_statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, datetime.now(UTC).isoformat()),
        )
    return True
