"""``ConversationStore`` on SQLite: users, conversations, messages and event logs in one file.

Every write is one ``BEGIN IMMEDIATE`` transaction on the store's single worker thread, so a
method stores everything or nothing, and ``seq`` (``conversations.last_seq + 1``) cannot be
handed out twice, even to another process writing the same file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from personae.core.ports import ConversationStore
from personae.core.types import (
    Conversation,
    EventRecord,
    Message,
    NewMessage,
    OpenedTurn,
    Role,
    User,
)
from personae.errors import ConversationNotFound, InvalidInput
from personae.storage.sqlite import event_log
from personae.storage.sqlite.connection import Connection, SqliteDatabase, transaction
from personae.storage.sqlite.migrations import migrate
from personae.storage.sqlite.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    USER_COLUMNS,
    T,
    as_text,
    clamp_limit,
    conversation_of,
    first,
    message_of,
    new_id,
    now,
    user_of,
)

# Most recently active first; rowid breaks ties in favour of the newer conversation.
_RECENT_FIRST = "ORDER BY updated_at DESC, rowid DESC"

# After a discard, last_seq falls back to the newest remaining message: the discarded seq is
# handed out again only if no later message exists, so seqs stay gap-free as clients saw them
# (a discarded turn's seq was never followed by anything). updated_at goes back to the newest
# remaining message, which is what it was before the turn (see ``_insert_message``).
_RESTORE_CONVERSATION = """
UPDATE conversations SET
    last_seq = COALESCE((SELECT max(seq) FROM messages WHERE conversation_id = :id), 0),
    updated_at = max(created_at, COALESCE(
        (SELECT max(created_at) FROM messages WHERE conversation_id = :id), created_at))
WHERE id = :id
"""


class SqliteConversationStore(ConversationStore):
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path)

    async def open(self) -> None:
        await self._db.open()
        try:
            await self._db.run("migrate the database schema", migrate)
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()

    async def open_turn(
        self,
        *,
        external_user_id: str,
        character_id: str,
        text: str,
        conversation_id: str | None = None,
        new_conversation: bool = False,
        greeting: str | None = None,
        idempotency_key: str | None = None,
    ) -> OpenedTurn:
        if new_conversation and conversation_id is not None:
            raise InvalidInput("name a conversation or ask for a new one, not both")

        def work(conn: Connection) -> OpenedTurn:
            with transaction(conn):
                user, created_user = _ensure_user(conn, external_user_id)
                if idempotency_key is not None:
                    seen = _seen_key(conn, user, idempotency_key)
                    if seen is not None:
                        return seen
                conversation = (
                    None
                    if new_conversation
                    else _find_conversation(conn, user.id, character_id, conversation_id)
                )
                created_conversation = conversation is None
                if conversation is None:
                    conversation = _create_conversation(conn, user.id, character_id)
                    if greeting:  # an empty greeting is no greeting
                        greet = NewMessage(Role.ASSISTANT, greeting)
                        conversation = _insert_message(conn, conversation, greet)[1]
                message, conversation = _insert_message(
                    conn, conversation, NewMessage(Role.USER, text)
                )
                if idempotency_key is not None:
                    conn.execute(
                        "INSERT INTO idempotency_keys (user_id, key, message_id, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (user.id, idempotency_key, message.id, as_text(message.created_at)),
                    )
                return OpenedTurn(user, conversation, message, created_user, created_conversation)

        return await self._db.run("store the user message", work)

    async def discard_turn(self, turn: OpenedTurn) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                # Cascades to its idempotency key.
                conn.execute("DELETE FROM messages WHERE id = ?", (turn.message.id,))
                if turn.created_conversation:
                    # Cascades to the greeting.
                    conn.execute("DELETE FROM conversations WHERE id = ?", (turn.conversation.id,))
                else:
                    conn.execute(_RESTORE_CONVERSATION, {"id": turn.conversation.id})
                if turn.created_user:
                    conn.execute(
                        "DELETE FROM users WHERE id = :id AND NOT EXISTS "
                        "(SELECT 1 FROM conversations WHERE user_id = :id)",
                        {"id": turn.user.id},
                    )

        await self._db.run("discard the turn", work)

    async def append_message(self, conversation_id: str, message: NewMessage) -> Message:
        def work(conn: Connection) -> Message:
            with transaction(conn):
                conversation = _conversation(conn, conversation_id)
                return _insert_message(conn, conversation, message)[0]

        return await self._db.run("store the message", work)

    async def append_events(self, conversation_id: str, records: Sequence[EventRecord]) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                last = _conversation(conn, conversation_id).last_event_seq
                event_log.append(conn, conversation_id, last, records)

        if records:
            await self._db.run("store the events", work)

    async def list_events(
        self, conversation_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        return await self._db.run(
            "read the events",
            lambda conn: event_log.read(conn, conversation_id, after_seq, clamp_limit(limit)),
        )

    async def get_user(self, external_user_id: str) -> User | None:
        sql = f"{USER_COLUMNS} WHERE external_id = ?"
        return first(await self._select("read the user", sql, (external_user_id,), user_of))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        sql = f"{CONVERSATION_COLUMNS} WHERE id = ?"
        found = await self._select(
            "read the conversation", sql, (conversation_id,), conversation_of
        )
        return first(found)

    async def list_conversations(
        self, user_id: str, *, character_id: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        args: tuple[object, ...]
        if character_id is None:
            where, args = "user_id = ?", (user_id, clamp_limit(limit))
        else:
            where = "user_id = ? AND character_id = ?"
            args = (user_id, character_id, clamp_limit(limit))
        sql = f"{CONVERSATION_COLUMNS} WHERE {where} {_RECENT_FIRST} LIMIT ?"
        return await self._select("list conversations", sql, args, conversation_of)

    async def recent_messages(self, conversation_id: str, *, limit: int) -> list[Message]:
        sql = (
            f"SELECT * FROM ({MESSAGE_COLUMNS} WHERE conversation_id = ? ORDER BY seq DESC"
            " LIMIT ?) ORDER BY seq"
        )
        args = (conversation_id, clamp_limit(limit))
        return await self._select("read recent messages", sql, args, message_of)

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Message]:
        sql = f"{MESSAGE_COLUMNS} WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        args = (conversation_id, after_seq, clamp_limit(limit))
        return await self._select("list messages", sql, args, message_of)

    async def _select(
        self, what: str, sql: str, args: tuple[object, ...], as_value: Callable[[Any], T]
    ) -> list[T]:
        def work(conn: Connection) -> list[T]:
            return [as_value(row) for row in conn.execute(sql, args)]

        return await self._db.run(what, work)


# --- statements run inside a transaction on the worker thread ------------------------------


def _ensure_user(conn: Connection, external_id: str) -> tuple[User, bool]:
    row = conn.execute(f"{USER_COLUMNS} WHERE external_id = ?", (external_id,)).fetchone()
    if row is not None:
        return user_of(row), False
    user = User(id=new_id("usr"), external_id=external_id, created_at=now())
    conn.execute(
        "INSERT INTO users (id, external_id, created_at) VALUES (?, ?, ?)",
        (user.id, user.external_id, as_text(user.created_at)),
    )
    return user, True


def _seen_key(conn: Connection, user: User, key: str) -> OpenedTurn | None:
    row = conn.execute(
        f"{MESSAGE_COLUMNS} WHERE id = (SELECT message_id FROM idempotency_keys"
        " WHERE user_id = ? AND key = ?)",
        (user.id, key),
    ).fetchone()
    if row is None:
        return None
    message = message_of(row)
    conversation = _conversation(conn, message.conversation_id)
    return OpenedTurn(user, conversation, message, False, False, duplicate=True)


def _conversation(conn: Connection, conversation_id: str) -> Conversation:
    row = conn.execute(f"{CONVERSATION_COLUMNS} WHERE id = ?", (conversation_id,)).fetchone()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return conversation_of(row)


def _find_conversation(
    conn: Connection, user_id: str, character_id: str, conversation_id: str | None
) -> Conversation | None:
    if conversation_id is None:
        sql = (
            f"{CONVERSATION_COLUMNS} WHERE user_id = ? AND character_id = ? {_RECENT_FIRST} LIMIT 1"
        )
        row = conn.execute(sql, (user_id, character_id)).fetchone()
        return None if row is None else conversation_of(row)
    # One query for "exists and is theirs": another user's id looks exactly like an unknown one.
    sql = f"{CONVERSATION_COLUMNS} WHERE id = ? AND user_id = ? AND character_id = ?"
    row = conn.execute(sql, (conversation_id, user_id, character_id)).fetchone()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return conversation_of(row)


def _create_conversation(conn: Connection, user_id: str, character_id: str) -> Conversation:
    stamp = now()
    conversation = Conversation(new_id("conv"), user_id, character_id, stamp, stamp)
    conn.execute(
        "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at, last_seq)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (conversation.id, user_id, character_id, as_text(stamp), as_text(stamp)),
    )
    return conversation


def _insert_message(
    conn: Connection, conversation: Conversation, new: NewMessage
) -> tuple[Message, Conversation]:
    """Store ``new`` at ``last_seq + 1``; ``conversation`` must have been read in this
    transaction. Returns the message and the conversation as it is now."""
    # Strictly after the previous write even if the clock stalls or steps back: updated_at
    # always moves forward, message times follow seq, and updated_at equals the newest
    # message's created_at (which ``discard_turn`` relies on).
    stamp = max(now(), conversation.updated_at + timedelta(microseconds=1))
    seq = conversation.last_seq + 1
    # Every NewMessage field is a Message field; the store adds id, seq and time.
    message = Message(
        id=new_id("msg"),
        conversation_id=conversation.id,
        seq=seq,
        created_at=stamp,
        **dataclasses.asdict(new),
    )
    values = dataclasses.asdict(message)
    values.update(role=new.role.value, status=new.status.value, created_at=as_text(stamp))
    placeholders = ", ".join(f":{name}" for name in values)
    conn.execute(f"INSERT INTO messages ({', '.join(values)}) VALUES ({placeholders})", values)
    conn.execute(
        "UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ?",
        (seq, as_text(stamp), conversation.id),
    )
    return message, dataclasses.replace(conversation, last_seq=seq, updated_at=stamp)
