"""``UserData`` on PostgreSQL: one user's rows in the shared database, exported as JSON data
or erased, exactly as the SQLite store does (``storage/sqlite/user_data.py``): erasure
deletes the ``users`` row and ``ON DELETE CASCADE`` takes the conversations and everything
hanging off them (messages, events, idempotency keys, state, group rows) in the same
transaction. Memory items are erased through the memory store (``DELETE /api/users/{id}``).

Times are exported as the SQLite store writes them (ISO 8601 text in UTC, microseconds), so
an export reads the same from either backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from personae.core.ports import UserData
from personae.storage.postgres.database import Conn
from personae.storage.postgres.resource import PostgresResource
from personae.storage.sqlite.rows import as_text

# What hangs off a user, and how to count its rows before they go.
_OWNED = {
    "conversations": "SELECT count(*) FROM conversations WHERE user_id = %(user)s",
    "messages": "SELECT count(*) FROM messages WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = %(user)s)",
    "events": "SELECT count(*) FROM events WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = %(user)s)",
    "conversation_state": "SELECT count(*) FROM conversation_state WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = %(user)s)",
    "idempotency_keys": "SELECT count(*) FROM idempotency_keys WHERE user_id = %(user)s",
}

# Text compared byte by byte, as SQLite orders it, whatever the database's collation.
_CONVERSATIONS = (
    "SELECT id, character_id, created_at, updated_at, last_seq FROM conversations"
    ' WHERE user_id = %s ORDER BY created_at, id COLLATE "C"'
)
_MESSAGES = (
    "SELECT id, seq, role, content, status, created_at, model, prompt_tokens,"
    " completion_tokens, latency_ms, character_version, speaker FROM messages"
    " WHERE conversation_id = %s ORDER BY seq"
)
_EVENTS = (
    "SELECT seq, last_seq, event, payload, created_at FROM events"
    " WHERE conversation_id = %s ORDER BY seq"
)
_STATE = (
    "SELECT key, version, value, updated_at FROM conversation_state"
    ' WHERE conversation_id = %s ORDER BY key COLLATE "C"'
)


class PostgresUserData(PostgresResource, UserData):
    async def export_user(self, external_user_id: str) -> dict[str, Any] | None:
        async def work(conn: Conn) -> dict[str, Any] | None:
            # One snapshot: the export is one moment, though turns write meanwhile.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            user = await _user(conn, external_user_id)
            if user is None:
                return None
            conversations = await _dicts(conn, _CONVERSATIONS, (user["id"],))
            for conversation in conversations:
                cid = (conversation["id"],)
                conversation["messages"] = await _dicts(conn, _MESSAGES, cid)
                conversation["events"] = await _dicts(conn, _EVENTS, cid)
                conversation["state"] = await _dicts(conn, _STATE, cid)
            return {"user": user, "conversations": conversations}

        return await self._db.run("export the user's data", work)

    async def erase_user(self, external_user_id: str) -> dict[str, int]:
        async def work(conn: Conn) -> dict[str, int]:
            # The user's row locked first, as a turn locks it: no turn of theirs adds rows
            # between the counts and the delete.
            user = await _user(conn, external_user_id, lock=True)
            counts = {"users": 0} | dict.fromkeys(_OWNED, 0)
            if user is None:
                return counts
            for table, query in _OWNED.items():
                cursor = await conn.execute(query, {"user": user["id"]})
                row = await cursor.fetchone()
                assert row is not None  # count(*) always answers
                counts[table] = int(row["count"])
            cursor = await conn.execute("DELETE FROM users WHERE id = %s", (user["id"],))
            counts["users"] = cursor.rowcount
            return counts

        return await self._db.run("erase the user's data", work)


async def _user(conn: Conn, external_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = "SELECT id, external_id, created_at FROM users WHERE external_id = %s"
    found = await _dicts(conn, query + (" FOR UPDATE" if lock else ""), (external_id,))
    return found[0] if found else None


async def _dicts(conn: Conn, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = await conn.execute(query, args)
    return [
        {name: as_text(v) if isinstance(v, datetime) else v for name, v in row.items()}
        for row in await cursor.fetchall()
    ]
