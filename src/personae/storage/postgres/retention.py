"""Retention purges on PostgreSQL (``core/retention.py``), as on SQLite
(``storage/sqlite/retention.py``): stored conversations and the audit log of every node.
Memory items are purged by the memory store's own ``purge_before``."""

from __future__ import annotations

from datetime import datetime

from personae.errors import InvalidInput
from personae.storage.postgres.database import Conn
from personae.storage.postgres.resource import PostgresResource


def _cutoff(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput("the purge date must be timezone-aware")
    return moment


class PostgresMessageRetention(PostgresResource):
    """Messages older than the cutoff go, with the event-log records of the same age (they
    hold the same text) and idempotency keys (by cascade); a conversation with nothing left
    that has not moved since the cutoff goes too (its state with it). A turn writing into a
    conversation at that moment holds its row lock and moves ``updated_at``, so the
    conversation's delete waits for it, then sees it moved and keeps it."""

    async def purge_before(self, moment: datetime) -> int:
        cutoff = _cutoff(moment)

        async def work(conn: Conn) -> int:
            gone = await conn.execute("DELETE FROM messages WHERE created_at < %s", (cutoff,))
            count = gone.rowcount
            await conn.execute("DELETE FROM events WHERE created_at < %s", (cutoff,))
            await conn.execute(
                "DELETE FROM conversations c WHERE updated_at < %s AND NOT EXISTS"
                " (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)",
                (cutoff,),
            )
            return count

        return await self._db.run("purge old messages", work)


class PostgresAuditRetention(PostgresResource):
    async def purge_before(self, moment: datetime) -> int:
        cutoff = _cutoff(moment)

        async def work(conn: Conn) -> int:
            gone = await conn.execute("DELETE FROM audit_log WHERE at < %s", (cutoff,))
            return gone.rowcount

        return await self._db.run("purge old audit rows", work)
