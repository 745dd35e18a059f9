"""Statements for redo turns (regenerate, edit) and a reply's alternatives ("swipes") on
PostgreSQL, run inside the caller's transaction with the conversation's row locked. Nothing
is deleted: a message that leaves the history is hidden, so the user can swipe back to it.
The rules that need no SQL are the SQLite store's (``storage.sqlite.redo``)."""

from __future__ import annotations

import dataclasses

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from personae.core.types import Conversation, Message
from personae.errors import Conflict, InvalidInput, NotFound
from personae.storage.postgres.rows import MESSAGE_COLUMNS, message_of
from personae.storage.sqlite.redo import check_expected, swipe_group
from personae.storage.sqlite.rows import now

__all__ = [
    "check_expected",
    "choose",
    "edit",
    "hide_alternatives",
    "last_user_message",
    "replies_after",
    "swipe_group",
]

Conn = AsyncConnection[DictRow]


async def last_user_message(conn: Conn, conversation: Conversation) -> Message:
    cursor = await conn.execute(
        f"{MESSAGE_COLUMNS} WHERE conversation_id = %s AND role = 'user' AND NOT hidden"
        " ORDER BY seq DESC LIMIT 1",
        (conversation.id,),
    )
    row = await cursor.fetchone()
    if row is None:
        raise InvalidInput("there is no message of yours to answer again in this conversation")
    return message_of(row)


async def replies_after(conn: Conn, message: Message) -> list[Message]:
    """The visible messages after ``message`` (its replies, and anything posted since)."""
    cursor = await conn.execute(
        f"{MESSAGE_COLUMNS} WHERE conversation_id = %s AND seq > %s AND NOT hidden ORDER BY seq",
        (message.conversation_id, message.seq),
    )
    return [message_of(row) for row in await cursor.fetchall()]


async def edit(conn: Conn, message: Message, text: str) -> Message:
    """Replace the text of ``message`` and hide every message after it (they answered the
    old text)."""
    stamp = now()
    await conn.execute(
        "UPDATE messages SET content = %s, edited_at = %s WHERE id = %s", (text, stamp, message.id)
    )
    await conn.execute(
        "UPDATE messages SET hidden = true WHERE conversation_id = %s AND seq > %s",
        (message.conversation_id, message.seq),
    )
    return dataclasses.replace(message, content=text, edited_at=stamp)


async def hide_alternatives(conn: Conn, conversation_id: str, group: str) -> None:
    await conn.execute(
        "UPDATE messages SET hidden = true"
        " WHERE conversation_id = %s AND (id = %s OR swipe_of = %s)",
        (conversation_id, group, group),
    )


async def choose(conn: Conn, conversation_id: str, message_id: str) -> Message:
    cursor = await conn.execute(
        f"{MESSAGE_COLUMNS} WHERE id = %s AND conversation_id = %s AND role = 'assistant'",
        (message_id, conversation_id),
    )
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no reply {message_id!r} in this conversation", message_id=message_id)
    chosen = message_of(row)
    group = chosen.swipe_of or chosen.id
    cursor = await conn.execute(
        "SELECT seq, (SELECT count(*) FROM messages"
        " WHERE swipe_of = %(g)s AND conversation_id = %(c)s) AS swipes"
        " FROM messages WHERE id = %(g)s AND conversation_id = %(c)s",
        {"g": group, "c": conversation_id},
    )
    first = await cursor.fetchone()
    if first is None or first["swipes"] == 0:
        raise NotFound(f"reply {message_id!r} has no alternatives", message_id=message_id)
    cursor = await conn.execute(
        "SELECT 1 FROM messages WHERE conversation_id = %s AND seq > %s AND NOT hidden"
        " AND role = 'user' LIMIT 1",
        (conversation_id, first["seq"]),
    )
    if await cursor.fetchone() is not None:
        raise Conflict("only the latest reply's alternatives can be chosen", message_id=message_id)
    await hide_alternatives(conn, conversation_id, group)
    await conn.execute("UPDATE messages SET hidden = false WHERE id = %s", (message_id,))
    return dataclasses.replace(chosen, hidden=False)
