"""The backends of the stores every node must share (``app/database.py: Stores``): keys, the
audit log, users' data and the retention purges, with the conversation store beside them.

Each test gets fresh storage (a SQLite file, or a new database on the session's PostgreSQL
from tests/postgres_server.py); every store a backend makes opens on that same storage, as
the composition root opens them, and ``snapshot`` shows every stored row underneath the
ports. The suites take the ``shared_backend`` fixture of ``tests/contracts/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, Self

from personae.core.ports import AuditLog, ConversationStore, KeyStore, UserData
from personae.storage import postgres
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.keys import SqliteKeyStore
from personae.storage.sqlite.retention import SqliteAuditRetention, SqliteMessageRetention
from personae.storage.sqlite.user_data import SqliteUserData
from tests.postgres_server import postgres_snapshot, shared_server
from tests.sqlite_snapshot import Snapshot, sqlite_snapshot


class Retention(Protocol):
    """A retention purge (``core.ports.Purgeable``), opened like a store."""

    async def purge_before(self, moment: datetime) -> int: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    name: str

    def conversations(self) -> ConversationStore: ...
    def keys(self) -> KeyStore: ...
    def audit(self) -> AuditLog: ...
    def users(self) -> UserData: ...
    def message_retention(self) -> Retention: ...
    def audit_retention(self) -> Retention: ...

    async def snapshot(self) -> Snapshot:
        """Every row of every table (the audit log's too), in a stable order."""
        ...


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "personae.sqlite3"

    def conversations(self) -> ConversationStore:
        return SqliteConversationStore(self.path)

    def keys(self) -> KeyStore:
        return SqliteKeyStore(self.path)

    def audit(self) -> AuditLog:
        return SqliteAuditLog(self.path)

    def users(self) -> UserData:
        return SqliteUserData(self.path)

    def message_retention(self) -> Retention:
        return SqliteMessageRetention(self.path)

    def audit_retention(self) -> Retention:
        return SqliteAuditRetention(self.path)

    async def snapshot(self) -> Snapshot:
        return sqlite_snapshot(self.path, skip=())


class PostgresBackend:
    name = "postgres"

    def __init__(self, tmp_path: Path) -> None:
        self.url = shared_server().create_database()

    def conversations(self) -> ConversationStore:
        return postgres.PostgresConversationStore(self.url)

    def keys(self) -> KeyStore:
        return postgres.PostgresKeyStore(self.url)

    def audit(self) -> AuditLog:
        return postgres.PostgresAuditLog(self.url)

    def users(self) -> UserData:
        return postgres.PostgresUserData(self.url)

    def message_retention(self) -> Retention:
        return postgres.PostgresMessageRetention(self.url)

    def audit_retention(self) -> Retention:
        return postgres.PostgresAuditRetention(self.url)

    async def snapshot(self) -> Snapshot:
        return await postgres_snapshot(self.url)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": SqliteBackend,
    "postgres": PostgresBackend,
}
