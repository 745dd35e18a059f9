"""Statements for redo turns (regenerate, edit) and a reply's alternatives ("swipes"), run
inside the caller's transaction on the store's worker thread. Nothing is deleted: a message
that leaves the history is hidden, so the user can swipe back to it."""

from __future__ import annotations

import dataclasses

from personae.core.types import Conversation, Message, Role
from personae.errors import Conflict, ConversationNotFound, InvalidInput, NotFound
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.rows import MESSAGE_COLUMNS, as_text, message_of, now


def last_user_message(conn: Connection, conversation: Conversation) -> Message:
    row = conn.execute(
        f"{MESSAGE_COLUMNS} WHERE conversation_id = ? AND role = 'user' AND hidden = 0"
        " ORDER BY seq DESC LIMIT 1",
        (conversation.id,),
    ).fetchone()
    if row is None:
        raise InvalidInput("there is no message of yours to answer again in this conversation")
    return message_of(row)


def replies_after(conn: Connection, message: Message) -> list[Message]:
    """The visible messages after ``message`` (its replies, and anything posted since)."""
    rows = conn.execute(
        f"{MESSAGE_COLUMNS} WHERE conversation_id = ? AND seq > ? AND hidden = 0 ORDER BY seq",
        (message.conversation_id, message.seq),
    )
    return [message_of(row) for row in rows]


def check_expected(expected: str | None, message: Message, replies: list[Message]) -> None:
    if expected is None or expected == message.id or any(r.id == expected for r in replies):
        return
    raise Conflict(
        "the conversation has moved on: that is no longer its last message or reply",
        expected=expected,
    )


def swipe_group(replies: list[Message], expected: str | None = None) -> str | None:
    """The alternatives a regenerated reply joins: those of the reply the caller named, else
    of the last reply, if there is one."""
    answers = [r for r in replies if r.role is Role.ASSISTANT]
    named = [r for r in answers if r.id == expected]
    chosen = named or answers[-1:]
    if not chosen:
        return None
    return chosen[0].swipe_of or chosen[0].id


def edit(conn: Connection, message: Message, text: str) -> Message:
    """Replace the text of ``message`` and hide every message after it (they answered the
    old text)."""
    stamp = now()
    conn.execute(
        "UPDATE messages SET content = ?, edited_at = ? WHERE id = ?",
        (text, as_text(stamp), message.id),
    )
    conn.execute(
        "UPDATE messages SET hidden = 1 WHERE conversation_id = ? AND seq > ?",
        (message.conversation_id, message.seq),
    )
    return dataclasses.replace(message, content=text, edited_at=stamp)


def hide_alternatives(conn: Connection, conversation_id: str, group: str) -> None:
    conn.execute(
        "UPDATE messages SET hidden = 1 WHERE conversation_id = ? AND (id = ? OR swipe_of = ?)",
        (conversation_id, group, group),
    )


def choose(conn: Connection, conversation_id: str, message_id: str) -> Message:
    row = conn.execute(
        f"{MESSAGE_COLUMNS} WHERE id = ? AND conversation_id = ? AND role = 'assistant'",
        (message_id, conversation_id),
    ).fetchone()
    if row is None:
        if not _exists(conn, conversation_id):
            raise ConversationNotFound(conversation_id)
        raise NotFound(f"no reply {message_id!r} in this conversation", message_id=message_id)
    chosen = message_of(row)
    group = chosen.swipe_of or chosen.id
    first = conn.execute(
        "SELECT seq, (SELECT count(*) FROM messages WHERE swipe_of = :g AND conversation_id = :c)"
        " FROM messages WHERE id = :g AND conversation_id = :c",
        {"g": group, "c": conversation_id},
    ).fetchone()
    if first is None or first[1] == 0:
        raise NotFound(f"reply {message_id!r} has no alternatives", message_id=message_id)
    later = conn.execute(
        "SELECT 1 FROM messages WHERE conversation_id = ? AND seq > ? AND hidden = 0"
        " AND role = 'user' LIMIT 1",
        (conversation_id, first[0]),
    ).fetchone()
    if later is not None:
        raise Conflict("only the latest reply's alternatives can be chosen", message_id=message_id)
    hide_alternatives(conn, conversation_id, group)
    conn.execute("UPDATE messages SET hidden = 0 WHERE id = ?", (message_id,))
    return dataclasses.replace(chosen, hidden=False)


def _exists(conn: Connection, conversation_id: str) -> bool:
    found = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,))
    return found.fetchone() is not None
