"""The per-conversation event log on PostgreSQL: appended in seq order under the
conversation's row lock, read back for resume."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from personae.core.types import EventRecord
from personae.errors import Conflict
from personae.storage.sqlite.rows import now

Conn = AsyncConnection[DictRow]


async def append(
    conn: Conn, conversation_id: str, last_seq: int, records: Sequence[EventRecord]
) -> None:
    """Insert ``records`` after ``last_seq`` (read under the row lock), inside the caller's
    transaction."""
    expected = last_seq + 1
    for record in records:
        if record.seq != expected or record.last_seq < record.seq:
            # Another writer got there first (or a caller lost count): refuse rather than
            # leave a gap or a fork in the log that clients resume from.
            raise Conflict(
                f"event seq {record.seq} does not follow {expected - 1} in {conversation_id}",
                conversation_id=conversation_id,
                expected=expected,
                got=record.seq,
            )
        expected = record.last_seq + 1
    stamp = now()
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO events (conversation_id, seq, last_seq, event, payload, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (conversation_id, r.seq, r.last_seq, r.event, Jsonb(r.payload), stamp)
                for r in records
            ],
        )
    await conn.execute(
        "UPDATE conversations SET last_event_seq = %s WHERE id = %s",
        (expected - 1, conversation_id),
    )


async def read(conn: Conn, conversation_id: str, after_seq: int, limit: int) -> list[EventRecord]:
    cursor = await conn.execute(
        "SELECT seq, last_seq, event, payload FROM events"
        " WHERE conversation_id = %s AND last_seq > %s ORDER BY seq LIMIT %s",
        (conversation_id, after_seq, limit),
    )
    return [
        EventRecord(row["seq"], row["last_seq"], row["event"], row["payload"])
        for row in await cursor.fetchall()
    ]
