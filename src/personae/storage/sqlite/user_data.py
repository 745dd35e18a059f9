"""``UserData`` on SQLite: one user's rows across the conversation store, exported as JSON
data or erased. Erasure deletes the ``users`` row; ``ON DELETE CASCADE`` takes the
conversations and everything hanging off them (messages, events, idempotency keys, state)
in the same transaction. Memory lives elsewhere (see ``DELETE /api/users/{id}``)."""

from __future__ import annotations

import json
from typing import Any

from personae.core.ports import UserData
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource

# What hangs off a user, and how to find its rows; tables from later migrations are counted
# only where they exist.
_OWNED = {
    "conversations": "SELECT count(*) FROM conversations WHERE user_id = :user",
    "messages": "SELECT count(*) FROM messages WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = :user)",
    "events": "SELECT count(*) FROM events WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = :user)",
    "conversation_state": "SELECT count(*) FROM conversation_state WHERE conversation_id IN"
    " (SELECT id FROM conversations WHERE user_id = :user)",
    "idempotency_keys": "SELECT count(*) FROM idempotency_keys WHERE user_id = :user",
}


class SqliteUserData(SqliteResource, UserData):
    async def export_user(self, external_user_id: str) -> dict[str, Any] | None:
        def work(conn: Connection) -> dict[str, Any] | None:
            user = _user(conn, external_user_id)
            if user is None:
                return None
            conversations = _dicts(
                conn,
                "SELECT id, character_id, created_at, updated_at, last_seq FROM conversations"
                " WHERE user_id = ? ORDER BY created_at, id",
                (user["id"],),
            )
            has_state = _has_table(conn, "conversation_state")
            for conversation in conversations:
                cid = conversation["id"]
                conversation["messages"] = _dicts(
                    conn,
                    "SELECT id, seq, role, content, status, created_at, model, prompt_tokens,"
                    " completion_tokens, latency_ms, character_version, speaker FROM messages"
                    " WHERE conversation_id = ? ORDER BY seq",
                    (cid,),
                )
                events = _dicts(
                    conn,
                    "SELECT seq, last_seq, event, payload, created_at FROM events"
                    " WHERE conversation_id = ? ORDER BY seq",
                    (cid,),
                )
                for event in events:
                    event["payload"] = json.loads(event["payload"])
                conversation["events"] = events
                if has_state:
                    states = _dicts(
                        conn,
                        "SELECT key, version, value, updated_at FROM conversation_state"
                        " WHERE conversation_id = ? ORDER BY key",
                        (cid,),
                    )
                    for state in states:
                        state["value"] = json.loads(state["value"])
                    conversation["state"] = states
            return {"user": user, "conversations": conversations}

        def snapshot(conn: Connection) -> dict[str, Any] | None:
            # One read transaction: the export is one moment, though turns write meanwhile.
            conn.execute("BEGIN")
            try:
                return work(conn)
            finally:
                conn.execute("COMMIT")

        return await self._db.read("export the user's data", snapshot)

    async def erase_user(self, external_user_id: str) -> dict[str, int]:
        def work(conn: Connection) -> dict[str, int]:
            with transaction(conn):
                user = _user(conn, external_user_id)
                counts = {"users": 0} | dict.fromkeys(_OWNED, 0)
                if user is None:
                    return counts
                for table, sql in _OWNED.items():
                    if _has_table(conn, table):
                        counts[table] = conn.execute(sql, {"user": user["id"]}).fetchone()[0]
                counts["users"] = conn.execute(
                    "DELETE FROM users WHERE id = ?", (user["id"],)
                ).rowcount
                return counts

        return await self._db.run("erase the user's data", work)


def _user(conn: Connection, external_id: str) -> dict[str, Any] | None:
    found = _dicts(
        conn, "SELECT id, external_id, created_at FROM users WHERE external_id = ?", (external_id,)
    )
    return found[0] if found else None


def _dicts(conn: Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _has_table(conn: Connection, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None
