"""``TurnRecords`` on SQLite: one row per recorded reply, the record as JSON
(``core/turn_record.py: record_data``), keyed by the reply's message id so it goes with the
message (cascade) when a user is erased or old messages are purged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from personae.core.turn_record import TurnRecord, TurnRecords, record_data, record_of
from personae.errors import InvalidInput
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text


class SqliteTurnRecords(SqliteResource, TurnRecords):
    async def add(self, records: Sequence[TurnRecord]) -> int:
        rows = [
            (
                r.turn_id,
                r.conversation_id,
                as_text(r.created_at),
                json.dumps(record_data(r), ensure_ascii=False),
            )
            for r in records
        ]

        def work(conn: Connection) -> int:
            kept = 0
            with transaction(conn):
                for row in rows:
                    # A reply discarded or erased before its record arrived: nothing to explain.
                    cursor = conn.execute(
                        "INSERT OR REPLACE INTO turn_records"
                        " (turn_id, conversation_id, created_at, record)"
                        " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?)",
                        (*row, row[0]),
                    )
                    kept += cursor.rowcount
            return kept

        return await self._db.write("store turn records", work)

    async def get(self, turn_id: str) -> TurnRecord | None:
        def work(conn: Connection) -> str | None:
            row = conn.execute(
                "SELECT record FROM turn_records WHERE turn_id = ?", (turn_id,)
            ).fetchone()
            return None if row is None else str(row["record"])

        text = await self._db.read("read a turn record", work)
        return None if text is None else _record(text)

    async def for_conversation(self, conversation_id: str) -> list[TurnRecord]:
        def work(conn: Connection) -> list[str]:
            rows = conn.execute(
                "SELECT record FROM turn_records WHERE conversation_id = ?"
                " ORDER BY created_at, turn_id",
                (conversation_id,),
            ).fetchall()
            return [str(row["record"]) for row in rows]

        return [_record(text) for text in await self._db.read("read turn records", work)]

    async def purge_before(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise InvalidInput("the purge date must be timezone-aware")
        cutoff = as_text(moment)

        def work(conn: Connection) -> int:
            with transaction(conn):
                gone = conn.execute("DELETE FROM turn_records WHERE created_at < ?", (cutoff,))
                return int(gone.rowcount)

        return await self._db.write("purge old turn records", work)


def _record(text: str) -> TurnRecord:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"a stored turn record is not JSON: {exc}") from None
    return record_of(data)
