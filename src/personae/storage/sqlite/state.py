"""Versioned conversation state: one JSON value per (conversation, key), replaced only by a
writer that read the version now stored (compare-and-set), inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from personae.core.ports import VersionedState
from personae.errors import InvalidInput, StateConflict
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.rows import as_text, now


def read(conn: Connection, conversation_id: str, key: str) -> VersionedState | None:
    row = conn.execute(
        "SELECT version, value FROM conversation_state WHERE conversation_id = ? AND key = ?",
        (conversation_id, key),
    ).fetchone()
    if row is None:
        return None
    return VersionedState(conversation_id, key, row[0], json.loads(row[1]))


def write(
    conn: Connection,
    conversation_id: str,
    key: str,
    value: Mapping[str, Any],
    expected_version: int | None,
) -> VersionedState:
    """Store ``value`` as the next version, or raise ``StateConflict`` if the stored version
    is not ``expected_version``; the caller checked that the conversation exists."""
    text = encode(value)
    current = read(conn, conversation_id, key)
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
    conn.execute(
        "INSERT INTO conversation_state (conversation_id, key, version, value, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation_id, key)"
        " DO UPDATE SET version = excluded.version, value = excluded.value,"
        " updated_at = excluded.updated_at",
        (conversation_id, key, version, text, as_text(now())),
    )
    return VersionedState(conversation_id, key, version, json.loads(text))


def encode(value: Mapping[str, Any]) -> str:
    """``value`` as JSON text; anything JSON cannot hold exactly is refused, before any write."""
    if not isinstance(value, Mapping):
        raise InvalidInput("a state value must be a mapping")
    try:
        return json.dumps(dict(value), allow_nan=False, default=_refuse, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a state value must be JSON data: {exc}") from exc


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON data")
