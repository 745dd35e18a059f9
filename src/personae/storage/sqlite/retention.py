"""Retention purges on SQLite (``core/retention.py``): stored conversations and the audit log.
Memory items are purged by the memory store's own ``purge_before``."""

from __future__ import annotations

from datetime import datetime

from personae.errors import InvalidInput
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text


def _cutoff(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("the purge date must be timezone-aware")
    return as_text(moment)


class SqliteMessageRetention(SqliteResource):
    """Messages older than the cutoff go, with the event-log records of the same age (they
    hold the same text) and idempotency keys (by cascade); a conversation with nothing left
    that has not moved since the cutoff goes too (its state with it)."""

    async def purge_before(self, moment: datetime) -> int:
        cutoff = _cutoff(moment)

        def work(conn: Connection) -> int:
            with transaction(conn):
                gone = conn.execute("DELETE FROM messages WHERE created_at < ?", (cutoff,))
                count = gone.rowcount
                conn.execute("DELETE FROM events WHERE created_at < ?", (cutoff,))
                conn.execute(
                    "DELETE FROM conversations WHERE updated_at < ? AND NOT EXISTS"
                    " (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id)",
                    (cutoff,),
                )
                return int(count)

        return await self._db.run("purge old messages", work)


class SqliteAuditRetention(SqliteResource):
    async def purge_before(self, moment: datetime) -> int:
        cutoff = _cutoff(moment)

        def work(conn: Connection) -> int:
            with transaction(conn):
                return int(conn.execute("DELETE FROM audit_log WHERE at < ?", (cutoff,)).rowcount)

        return await self._db.run("purge old audit rows", work)
