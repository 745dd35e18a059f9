"""Versioned conversation state on PostgreSQL: one JSON value per (conversation, key),
replaced only by a writer that read the version now stored (compare-and-set). The caller
holds the conversation's row lock, so two writers of one version queue and the second sees
the first's version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from personae.core.ports import VersionedState
from personae.errors import StateConflict
from personae.storage.sqlite.rows import now
from personae.storage.sqlite.state import encode

__all__ = ["encode", "read", "write"]

Conn = AsyncConnection[DictRow]


async def read(conn: Conn, conversation_id: str, key: str) -> VersionedState | None:
    cursor = await conn.execute(
        "SELECT version, value FROM conversation_state WHERE conversation_id = %s AND key = %s",
        (conversation_id, key),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return VersionedState(conversation_id, key, row["version"], row["value"])


async def write(
    conn: Conn,
    conversation_id: str,
    key: str,
    value: Mapping[str, Any],
    expected_version: int | None,
) -> VersionedState:
    """Store ``value`` as the next version, or raise ``StateConflict`` if the stored version
    is not ``expected_version``; the caller locked the conversation's row."""
    text = encode(value)
    current = await read(conn, conversation_id, key)
    found = None if current is None else current.version
    if found != expected_version:
        raise StateConflict(
            f"state {key!r} of {conversation_id} is at version {found}, not {expected_version}",
            conversation_id=conversation_id,
            key=key,
            expected=expected_version,
            found=found,
        )
    version = 1 if found is None else found + 1
    await conn.execute(
        "INSERT INTO conversation_state (conversation_id, key, version, value, updated_at)"
        " VALUES (%s, %s, %s, %s::jsonb, %s) ON CONFLICT (conversation_id, key)"
        " DO UPDATE SET version = excluded.version, value = excluded.value,"
        " updated_at = excluded.updated_at",
        (conversation_id, key, version, text, now()),
    )
    return VersionedState(conversation_id, key, version, json.loads(text))
