"""``AuditLog`` on SQLite: one row per admin action or model call, details as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from personae.core.ports import AuditLog
from personae.core.types import AuditEntry
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text, clamp_limit, now

_COLUMNS = (
    "SELECT id, at, action, actor, outcome, target, role, tenant, key_id, client, details"
    " FROM audit_log"
)


class SqliteAuditLog(SqliteResource, AuditLog):
    async def record(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        stamped = now()
        rows = [
            (
                as_text(e.at or stamped),
                e.action,
                e.actor,
                e.outcome,
                e.target,
                e.role,
                e.tenant,
                e.key_id,
                e.client,
                json.dumps(e.details, separators=(",", ":"), default=str),
            )
            for e in entries
        ]

        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO audit_log (at, action, actor, outcome, target, role, tenant,"
                    " key_id, client, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._db.run("write the audit log", work)

    async def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        where, args = ["1 = 1"], []
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        if since is not None:
            where.append("at >= ?")
            args.append(as_text(since))
        sql = f"{_COLUMNS} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"

        def work(conn: Connection) -> list[AuditEntry]:
            rows = conn.execute(sql, (*args, clamp_limit(limit))).fetchall()
            return [_entry_of(row) for row in rows]

        # Through the writer, behind the rows already queued: entries are recorded off the
        # request's path (``AuditWriter``), and a query right after must still see them.
        return await self._db.write("read the audit log", work)


def _entry_of(row: Any) -> AuditEntry:
    values: dict[str, Any] = dict(zip(row.keys(), row, strict=True))
    values["at"] = datetime.fromisoformat(values["at"])
    values["details"] = json.loads(values["details"])
    return AuditEntry(**values)
