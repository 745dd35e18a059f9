"""Statements of the conversation store on PostgreSQL (users, conversations, messages,
idempotency keys), run inside the caller's transaction.

Concurrency lives in row locks: a conversation's row is locked (``FOR NO KEY UPDATE``) before its
``last_seq`` is read and moved, so writers on any node queue on it and seqs stay gap-free;
``open_turn`` first locks the user's row, so two first turns of one user cannot both start a
conversation or both take an idempotency key (the primary key refuses a second one anyway).
Users are locked before conversations, everywhere, so the locks cannot deadlock.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from personae.core.types import Conversation, Message, NewMessage, OpenedTurn, User
from personae.errors import ConversationNotFound
from personae.storage.postgres import redo
from personae.storage.postgres.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    USER_COLUMNS,
    conversation_of,
    message_of,
    user_of,
)
from personae.storage.sqlite.rows import new_id, now

Conn = AsyncConnection[DictRow]

# Most recently active first; creation order breaks ties in favour of the newer conversation.
RECENT_FIRST = "ORDER BY updated_at DESC, pk DESC"

# After a discard, last_seq falls back to the newest remaining message and updated_at to its
# time (what they were before the turn): the SQLite store's rule.
RESTORE_CONVERSATION = """
UPDATE conversations SET
    last_seq = COALESCE((SELECT max(seq) FROM messages WHERE conversation_id = %(id)s), 0),
    updated_at = GREATEST(created_at, COALESCE(
        (SELECT max(created_at) FROM messages WHERE conversation_id = %(id)s), created_at))
WHERE id = %(id)s
"""

# Serialises writers of a row without blocking the foreign-key checks (KEY SHARE) of
# transactions that only insert rows referring to it.
_LOCK = " FOR NO KEY UPDATE"

_IS_GROUP = (
    "EXISTS (SELECT 1 FROM conversation_groups g WHERE g.conversation_id = conversations.id)"
)


async def fetch_one(conn: Conn, query: str, params: Any = None) -> DictRow | None:
    cursor = await conn.execute(query, params)
    return await cursor.fetchone()


async def find_user(conn: Conn, external_id: str) -> User | None:
    row = await fetch_one(conn, f"{USER_COLUMNS} WHERE external_id = %s", (external_id,))
    return None if row is None else user_of(row)


async def ensure_user(conn: Conn, external_id: str, *, lock: bool = False) -> tuple[User, bool]:
    """The user, created if unknown (the bool says so); with ``lock`` its row stays locked
    until the transaction ends (a row this transaction inserted is locked anyway)."""
    query = f"{USER_COLUMNS} WHERE external_id = %s{_LOCK if lock else ''}"
    while True:
        row = await fetch_one(conn, query, (external_id,))
        if row is not None:  # the usual case: one statement
            return user_of(row), False
        user = User(id=new_id("usr"), external_id=external_id, created_at=now())
        inserted = await fetch_one(
            conn,
            "INSERT INTO users (id, external_id, created_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (external_id) DO NOTHING RETURNING id",
            (user.id, user.external_id, user.created_at),
        )
        if inserted is not None:
            return user, True
        # Another node created it since our read (its insert made ours wait, then
        # conflict): read it again; should that node's turn have been discarded meanwhile,
        # taking the user with it, the next round creates it.


async def user_turns(conn: Conn, conversation_id: str) -> int:
    """The user's messages in the conversation: the lorebook's turn counter."""
    row = await fetch_one(
        conn,
        "SELECT count(*) AS n FROM messages WHERE conversation_id = %s AND role = 'user'",
        (conversation_id,),
    )
    assert row is not None
    return int(row["n"])


async def remember_key(conn: Conn, user: User, key: str, message: Message) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, message_id, created_at)"
        " VALUES (%s, %s, %s, %s)",
        (user.id, key, message.id, now()),
    )


async def seen_key(conn: Conn, user: User, key: str) -> OpenedTurn | None:
    row = await fetch_one(
        conn,
        f"{MESSAGE_COLUMNS} WHERE id = (SELECT message_id FROM idempotency_keys"
        " WHERE user_id = %s AND key = %s)",
        (user.id, key),
    )
    if row is None:
        return None
    message = message_of(row)
    conversation = await conversation_row(conn, message.conversation_id)
    return OpenedTurn(user, conversation, message, False, False, duplicate=True)


async def conversation_row(conn: Conn, conversation_id: str, *, lock: bool = False) -> Conversation:
    """The conversation (``ConversationNotFound`` if none); with ``lock``, its row locked
    until the transaction ends: the writers of one conversation queue here."""
    locking = _LOCK if lock else ""
    row = await fetch_one(
        conn, f"{CONVERSATION_COLUMNS} WHERE id = %s{locking}", (conversation_id,)
    )
    if row is None:
        raise ConversationNotFound(conversation_id)
    return conversation_of(row)


async def find_conversation(
    conn: Conn,
    user_id: str,
    character_id: str,
    conversation_id: str | None,
    *,
    group: bool = False,
) -> Conversation | None:
    """The conversation a turn writes to, locked. A group's is found only by a group turn
    (``group``), and a one-to-one chat never by one."""
    if conversation_id is None:
        row = await fetch_one(
            conn,
            f"{CONVERSATION_COLUMNS} WHERE user_id = %s AND character_id = %s"
            f" AND NOT {_IS_GROUP} {RECENT_FIRST} LIMIT 1{_LOCK}",
            (user_id, character_id),
        )
        return None if row is None else conversation_of(row)
    # One query for "exists and is theirs" (owned, or a group they take part in): another
    # user's id looks exactly like an unknown one.
    row = await fetch_one(
        conn,
        f"{CONVERSATION_COLUMNS} WHERE id = %s AND character_id = %s AND {_IS_GROUP} = %s"
        " AND (user_id = %s OR EXISTS (SELECT 1 FROM conversation_participants p"
        f" WHERE p.conversation_id = conversations.id AND p.user_id = %s)){_LOCK}",
        (conversation_id, character_id, group, user_id, user_id),
    )
    if row is None:
        raise ConversationNotFound(conversation_id)
    return conversation_of(row)


async def create_conversation(conn: Conn, user_id: str, character_id: str) -> Conversation:
    stamp = now()
    conversation = Conversation(new_id("conv"), user_id, character_id, stamp, stamp)
    await conn.execute(
        "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at, last_seq)"
        " VALUES (%s, %s, %s, %s, %s, 0)",
        (conversation.id, user_id, character_id, stamp, stamp),
    )
    return conversation


async def insert_message(
    conn: Conn, conversation: Conversation, new: NewMessage
) -> tuple[Message, Conversation]:
    """Store ``new`` at ``last_seq + 1``; ``conversation`` must have been read under its row
    lock in this transaction. Returns the message and the conversation as it is now."""
    # Strictly after the previous write even if the clock stalls or steps back (or another
    # node's clock is ahead): updated_at always moves forward and equals the newest
    # message's created_at, which ``discard_turn`` relies on.
    stamp = max(now(), conversation.updated_at + timedelta(microseconds=1))
    seq = conversation.last_seq + 1
    if new.swipe_of is not None:  # a regenerated reply: the one shown of its alternatives
        await redo.hide_alternatives(conn, conversation.id, new.swipe_of)
    message = Message(
        id=new_id("msg"),
        conversation_id=conversation.id,
        seq=seq,
        created_at=stamp,
        **dataclasses.asdict(new),
    )
    values = dataclasses.asdict(message)
    values.update(role=new.role.value, status=new.status.value)
    placeholders = ", ".join(f"%({name})s" for name in values)
    await conn.execute(
        f"INSERT INTO messages ({', '.join(values)}) VALUES ({placeholders})", values
    )
    await conn.execute(
        "UPDATE conversations SET last_seq = %s, updated_at = %s WHERE id = %s",
        (seq, stamp, conversation.id),
    )
    return message, dataclasses.replace(conversation, last_seq=seq, updated_at=stamp)
