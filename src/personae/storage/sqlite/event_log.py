"""The per-conversation event log: appended in seq order, read back for resume."""

from __future__ import annotations

import json
from collections.abc import Sequence

from personae.core.types import EventRecord
from personae.errors import Conflict
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.rows import as_text, now


def append(
    conn: Connection, conversation_id: str, last_seq: int, records: Sequence[EventRecord]
) -> None:
    """Insert ``records`` after ``last_seq``, inside the caller's transaction."""
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
    stamp = as_text(now())
    conn.executemany(
        "INSERT INTO events (conversation_id, seq, last_seq, event, payload, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (conversation_id, r.seq, r.last_seq, r.event, json.dumps(r.payload), stamp)
            for r in records
        ],
    )
    conn.execute(
        "UPDATE conversations SET last_event_seq = ? WHERE id = ?",
        (expected - 1, conversation_id),
    )


def read(conn: Connection, conversation_id: str, after_seq: int, limit: int) -> list[EventRecord]:
    rows = conn.execute(
        "SELECT seq, last_seq, event, payload FROM events"
        " WHERE conversation_id = ? AND last_seq > ? ORDER BY seq LIMIT ?",
        (conversation_id, after_seq, limit),
    )
    return [
        EventRecord(seq, last, event, json.loads(payload)) for seq, last, event, payload in rows
    ]
