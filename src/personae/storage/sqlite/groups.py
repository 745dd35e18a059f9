"""Group conversations in SQLite: members (characters) and participants (users besides the
owner), read and written inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from personae.core.types import Group, GroupMember
from personae.errors import ConversationNotFound, InvalidInput
from personae.storage.sqlite.connection import Connection


def add(
    conn: Connection,
    conversation_id: str,
    characters: Sequence[str],
    participant_ids: Sequence[str],
    seed: str,
) -> None:
    if len(set(characters)) != len(characters) or len(characters) < 2:
        raise InvalidInput("a group needs at least two different characters")
    conn.execute(
        "INSERT INTO conversation_groups (conversation_id, seed) VALUES (?, ?)",
        (conversation_id, seed),
    )
    conn.executemany(
        "INSERT INTO conversation_members (conversation_id, character_id, position)"
        " VALUES (?, ?, ?)",
        [(conversation_id, character, i) for i, character in enumerate(characters)],
    )
    conn.executemany(
        "INSERT OR IGNORE INTO conversation_participants (conversation_id, user_id) VALUES (?, ?)",
        [(conversation_id, user_id) for user_id in participant_ids],
    )


def read(conn: Connection, conversation_id: str) -> Group | None:
    found = conn.execute(
        "SELECT seed FROM conversation_groups WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()
    if found is None:
        return None
    members = conn.execute(
        "SELECT character_id, muted FROM conversation_members WHERE conversation_id = ?"
        " ORDER BY position",
        (conversation_id,),
    ).fetchall()
    participants = conn.execute(
        "SELECT u.external_id FROM conversation_participants p JOIN users u ON u.id = p.user_id"
        " WHERE p.conversation_id = ? ORDER BY u.external_id",
        (conversation_id,),
    ).fetchall()
    return Group(
        conversation_id=conversation_id,
        members=tuple(GroupMember(row[0], bool(row[1])) for row in members),
        participants=tuple(row[0] for row in participants),
        seed=found[0],
    )


def set_muted(conn: Connection, conversation_id: str, character_id: str, muted: bool) -> None:
    changed = conn.execute(
        "UPDATE conversation_members SET muted = ? WHERE conversation_id = ? AND character_id = ?",
        (int(muted), conversation_id, character_id),
    ).rowcount
    if not changed:
        raise ConversationNotFound(conversation_id)
