"""Group conversations on PostgreSQL: members (characters) and participants (users besides
the owner), read and written inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from personae.core.types import Group, GroupMember
from personae.errors import ConversationNotFound, InvalidInput

Conn = AsyncConnection[DictRow]


async def add(
    conn: Conn,
    conversation_id: str,
    characters: Sequence[str],
    participant_ids: Sequence[str],
    seed: str,
) -> None:
    if len(set(characters)) != len(characters) or len(characters) < 2:
        raise InvalidInput("a group needs at least two different characters")
    await conn.execute(
        "INSERT INTO conversation_groups (conversation_id, seed) VALUES (%s, %s)",
        (conversation_id, seed),
    )
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO conversation_members (conversation_id, character_id, position)"
            " VALUES (%s, %s, %s)",
            [(conversation_id, character, i) for i, character in enumerate(characters)],
        )
        await cursor.executemany(
            "INSERT INTO conversation_participants (conversation_id, user_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            [(conversation_id, user_id) for user_id in participant_ids],
        )


async def read(conn: Conn, conversation_id: str) -> Group | None:
    cursor = await conn.execute(
        "SELECT seed FROM conversation_groups WHERE conversation_id = %s", (conversation_id,)
    )
    found = await cursor.fetchone()
    if found is None:
        return None
    cursor = await conn.execute(
        "SELECT character_id, muted FROM conversation_members WHERE conversation_id = %s"
        " ORDER BY position",
        (conversation_id,),
    )
    members = await cursor.fetchall()
    # Byte order, as SQLite sorts text, whatever the database's collation.
    cursor = await conn.execute(
        "SELECT u.external_id FROM conversation_participants p JOIN users u ON u.id = p.user_id"
        ' WHERE p.conversation_id = %s ORDER BY u.external_id COLLATE "C"',
        (conversation_id,),
    )
    participants = await cursor.fetchall()
    return Group(
        conversation_id=conversation_id,
        members=tuple(GroupMember(row["character_id"], row["muted"]) for row in members),
        participants=tuple(row["external_id"] for row in participants),
        seed=found["seed"],
    )


async def set_muted(conn: Conn, conversation_id: str, character_id: str, muted: bool) -> None:
    cursor = await conn.execute(
        "UPDATE conversation_members SET muted = %s"
        " WHERE conversation_id = %s AND character_id = %s",
        (muted, conversation_id, character_id),
    )
    if not cursor.rowcount:
        raise ConversationNotFound(conversation_id)
