"""``ReminderStore`` on SQLite: one row per reminder, kept after delivery or cancellation
(``state``), so a claim can be checked and the history read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from personae.core.reminder_store import NewReminder, Reminder, ReminderStore
from personae.errors import InvalidInput
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text, new_id

_COLUMNS = (
    "SELECT id, user_external_id, character_id, conversation_id, text, due_at, created_at,"
    " state, attempts, channel, chat FROM reminders"
)
#: Shortest id prefix ``cancel`` accepts: fewer characters could name several reminders.
MIN_ID_PREFIX = 4


class SqliteReminderStore(SqliteResource, ReminderStore):
    async def add(self, reminder: NewReminder, *, now: datetime, max_pending: int) -> Reminder:
        created = Reminder(
            id=new_id("rem"),
            user=reminder.user,
            character_id=reminder.character_id,
            conversation_id=reminder.conversation_id,
            text=reminder.text,
            due_at=reminder.due_at,
            created_at=now,
            channel=reminder.channel,
            chat=reminder.chat,
        )

        def work(conn: Connection) -> Reminder:
            with transaction(conn):
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM reminders WHERE user_external_id = ?"
                    " AND state IN ('pending', 'claimed')",
                    (reminder.user,),
                ).fetchone()
                if count >= max_pending:
                    raise InvalidInput(
                        f"you have {count} reminders waiting, the most allowed; cancel one first"
                        " (/reminders lists them)",
                        limit=max_pending,
                    )
                conn.execute(
                    "INSERT INTO reminders (id, user_external_id, character_id, conversation_id,"
                    " text, due_at, created_at, channel, chat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        created.id,
                        created.user,
                        created.character_id,
                        created.conversation_id,
                        created.text,
                        as_text(created.due_at),
                        as_text(now),
                        created.channel,
                        created.chat,
                    ),
                )
            return created

        return await self._db.write("store a reminder", work)

    async def pending(self, user: str, character_id: str | None = None) -> list[Reminder]:
        def work(conn: Connection) -> list[Reminder]:
            sql = f"{_COLUMNS} WHERE user_external_id = ? AND state IN ('pending', 'claimed')"
            args: tuple[Any, ...] = (user,)
            if character_id is not None:
                sql += " AND character_id = ?"
                args += (character_id,)
            rows = conn.execute(sql + " ORDER BY due_at, rowid", args).fetchall()
            return [_reminder_of(row) for row in rows]

        return await self._db.read("list reminders", work)

    async def cancel(self, user: str, reminder_id: str) -> Reminder | None:
        wanted = reminder_id.strip().lower().removeprefix("rem_")
        if len(wanted) < MIN_ID_PREFIX or not wanted.isalnum():
            return None

        def work(conn: Connection) -> Reminder | None:
            with transaction(conn):
                rows = conn.execute(
                    f"{_COLUMNS} WHERE user_external_id = ? AND state = 'pending'"
                    " AND substr(id, 5, ?) = ?",
                    (user, len(wanted), wanted),
                ).fetchall()
                if len(rows) != 1:  # none, or a prefix that names several
                    return None
                found = _reminder_of(rows[0])
                conn.execute(
                    "UPDATE reminders SET state = 'cancelled' WHERE id = ? AND state = 'pending'",
                    (found.id,),
                )
            return found

        return await self._db.write("cancel a reminder", work)

    async def claim_due(self, now: datetime, *, lease_s: float, limit: int = 50) -> list[Reminder]:
        stamp = as_text(now)
        stale = as_text(now - timedelta(seconds=lease_s))

        def work(conn: Connection) -> list[Reminder]:
            with transaction(conn):
                rows = conn.execute(
                    f"{_COLUMNS} WHERE (state = 'pending' AND due_at <= ?)"
                    " OR (state = 'claimed' AND claimed_at <= ?) ORDER BY due_at, rowid LIMIT ?",
                    (stamp, stale, limit),
                ).fetchall()
                ids = [row["id"] for row in rows]
                conn.executemany(
                    "UPDATE reminders SET state = 'claimed', claimed_at = ?,"
                    " attempts = attempts + 1 WHERE id = ?",
                    [(stamp, reminder_id) for reminder_id in ids],
                )
            return [_reminder_of(row, claimed=True) for row in rows]

        return await self._db.write("claim due reminders", work)

    async def delivered(self, reminder_id: str, now: datetime) -> None:
        await self._settle(reminder_id, "delivered", now, None)

    async def give_up(self, reminder_id: str, now: datetime, error: str) -> None:
        await self._settle(reminder_id, "failed", now, error)

    async def _settle(self, reminder_id: str, state: str, now: datetime, error: str | None) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE reminders SET state = ?, finished_at = ?,"
                    " last_error = COALESCE(?, last_error) WHERE id = ? AND state = 'claimed'",
                    (state, as_text(now), error, reminder_id),
                )

        await self._db.write(f"mark a reminder {state}", work)

    async def retry_later(self, reminder_id: str, at: datetime, error: str) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE reminders SET state = 'pending', due_at = ?, last_error = ?,"
                    " claimed_at = NULL WHERE id = ? AND state = 'claimed'",
                    (as_text(at), error, reminder_id),
                )

        await self._db.write("reschedule a reminder", work)

    async def next_due_at(self) -> datetime | None:
        def work(conn: Connection) -> datetime | None:
            (due,) = conn.execute(
                "SELECT MIN(due_at) FROM reminders WHERE state = 'pending'"
            ).fetchone()
            return None if due is None else datetime.fromisoformat(due)

        return await self._db.read("read the reminder schedule", work)


def _reminder_of(row: Any, *, claimed: bool = False) -> Reminder:
    values = dict(row)
    return Reminder(
        id=values["id"],
        user=values["user_external_id"],
        character_id=values["character_id"],
        conversation_id=values["conversation_id"],
        text=values["text"],
        due_at=datetime.fromisoformat(values["due_at"]),
        created_at=datetime.fromisoformat(values["created_at"]),
        state="claimed" if claimed else values["state"],
        attempts=values["attempts"] + (1 if claimed else 0),
        channel=values["channel"],
        chat=values["chat"],
    )
