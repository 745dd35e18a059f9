"""``AuditLog`` on PostgreSQL: the SQLite log's rows (one per admin action or model call,
details as JSON), written by every node into one table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from personae.core.ports import AuditLog
from personae.core.types import AuditEntry
from personae.storage.postgres.database import Conn
from personae.storage.postgres.resource import PostgresResource
from personae.storage.sqlite.rows import clamp_limit, now

_COLUMNS = (
    # details as the text it was written as: json.loads reads it back as SQLite's does.
    "SELECT id, at, action, actor, outcome, target, role, tenant, key_id, client,"
    " details::text AS details FROM audit_log"
)


class PostgresAuditLog(PostgresResource, AuditLog):
    async def record(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        stamped = now()
        rows = [
            (
                e.at or stamped,
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

        async def work(conn: Conn) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO audit_log (at, action, actor, outcome, target, role, tenant,"
                    " key_id, client, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " %s::json)",
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
        where: list[str] = ["true"]
        args: list[object] = []
        if actor is not None:
            where.append("actor = %s")
            args.append(actor)
        if action is not None:
            where.append("action = %s")
            args.append(action)
        if since is not None:
            where.append("at >= %s")
            args.append(since)
        sql = f"{_COLUMNS} WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"

        async def work(conn: Conn) -> list[AuditEntry]:
            cursor = await conn.execute(sql, (*args, clamp_limit(limit)))
            return [_entry_of(row) for row in await cursor.fetchall()]

        # Every write is committed before ``record`` returns, so a read sees it (SQLite's
        # query goes through its writer for the same promise).
        return await self._db.read("read the audit log", work)


def _entry_of(row: DictRow) -> AuditEntry:
    values: dict[str, Any] = dict(row)
    values["details"] = json.loads(values["details"])
    return AuditEntry(**values)
