"""``ChannelOutbox`` on SQLite: platform messages waiting for delivery, one row each, kept
after delivery (``state``) so a replayed enqueue is recognised by its ``dedupe_key``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from personae.core.channels import ChannelOutbox, NewOutboxItem, OutboxAction, OutboxItem
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text

_COLUMNS = (
    "SELECT id, channel, chat, text, dedupe_key, action, target, reply_to, attempts,"
    " next_attempt_at, created_at FROM channel_outbox"
)


class SqliteChannelOutbox(SqliteResource, ChannelOutbox):
    async def enqueue(self, items: Sequence[NewOutboxItem], now: datetime) -> int:
        stamp = as_text(now)
        rows = [
            (i.channel, i.chat, i.action, i.target, i.reply_to, i.text, i.dedupe_key, stamp, stamp)
            for i in items
        ]

        def work(conn: Connection) -> int:
            with transaction(conn):
                before = conn.total_changes
                conn.executemany(
                    "INSERT INTO channel_outbox (channel, chat, action, target, reply_to, text,"
                    " dedupe_key, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (dedupe_key) DO NOTHING",
                    rows,
                )
                return int(conn.total_changes - before)

        return await self._db.run("queue platform messages", work)

    async def due(self, channel: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        def work(conn: Connection) -> list[OutboxItem]:
            rows = conn.execute(
                f"{_COLUMNS} WHERE id IN (SELECT MIN(id) FROM channel_outbox"
                " WHERE channel = ? AND state = 'pending' GROUP BY chat)"
                " AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (channel, as_text(now), limit),
            ).fetchall()
            return [_item_of(row) for row in rows]

        return await self._db.read("read due platform messages", work)

    async def next_due_at(self, channel: str) -> datetime | None:
        def work(conn: Connection) -> datetime | None:
            row = conn.execute(
                "SELECT MIN(next_attempt_at) FROM channel_outbox"
                " WHERE channel = ? AND state = 'pending'",
                (channel,),
            ).fetchone()
            return None if row[0] is None else datetime.fromisoformat(row[0])

        return await self._db.read("read the outbox schedule", work)

    async def delivered(self, item_id: int, now: datetime, platform_id: str | None) -> None:
        await self._finish(item_id, "delivered", now, None, platform_id)

    async def give_up(self, item_id: int, now: datetime, error: str) -> None:
        await self._finish(item_id, "failed", now, error, None)

    async def _finish(
        self, item_id: int, state: str, now: datetime, error: str | None, platform_id: str | None
    ) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE channel_outbox SET state = ?, finished_at = ?, attempts = attempts + 1,"
                    " last_error = COALESCE(?, last_error), platform_id = ? WHERE id = ?",
                    (state, as_text(now), error, platform_id, item_id),
                )

        await self._db.run(f"mark a platform message {state}", work)

    async def retry_later(self, item_id: int, at: datetime, error: str) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE channel_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
                    " last_error = ? WHERE id = ?",
                    (as_text(at), error, item_id),
                )

        await self._db.run("reschedule a platform message", work)

    async def retarget(self, item_id: int, action: OutboxAction, target: str | None) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE channel_outbox SET action = ?, target = ? WHERE id = ?",
                    (action, target, item_id),
                )

        await self._db.run("retarget a platform message", work)

    async def reschedule_all(self, channel: str, now: datetime) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE channel_outbox SET next_attempt_at = MIN(next_attempt_at, ?)"
                    " WHERE channel = ? AND state = 'pending'",
                    (as_text(now), channel),
                )

        await self._db.run("reschedule pending platform messages", work)

    async def pending(self, channel: str) -> int:
        def work(conn: Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM channel_outbox WHERE channel = ? AND state = 'pending'",
                (channel,),
            ).fetchone()
            return int(row[0])

        return await self._db.read("count pending platform messages", work)


def _item_of(row: Any) -> OutboxItem:
    values = dict(row)
    values["next_attempt_at"] = datetime.fromisoformat(values["next_attempt_at"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return OutboxItem(**values)
