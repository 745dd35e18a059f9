"""``ConversationStore`` on SQLite: users, conversations and messages in one database file.

Every write is one ``BEGIN IMMEDIATE`` transaction on the store's single worker thread, so a
method stores everything or nothing, and ``seq`` (``conversations.last_seq + 1``) cannot be
handed out twice, even to another process writing the same file.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from personae.core.ports import ConversationStore
from personae.core.types import (
    Conversation,
    Message,
    MessageStatus,
    NewMessage,
    OpenedTurn,
    Role,
    User,
)
from personae.errors import ConversationNotFound, InvalidInput
from personae.storage.sqlite.connection import Connection, SqliteDatabase, transaction
from personae.storage.sqlite.migrations import migrate

T = TypeVar("T")

_USER = "SELECT id, external_id, created_at FROM users"
_CONVERSATION = (
    "SELECT id, user_id, character_id, created_at, updated_at, last_seq FROM conversations"
)
_MESSAGE = (
    "SELECT id, conversation_id, seq, role, content, created_at, status, model, prompt_tokens,"
    " completion_tokens, latency_ms FROM messages"
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
    ) -> OpenedTurn:
        if new_conversation and conversation_id is not None:
            raise InvalidInput("name a conversation or ask for a new one, not both")

        def work(conn: Connection) -> OpenedTurn:
            with transaction(conn):
                user, created_user = _ensure_user(conn, external_user_id)
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
                return OpenedTurn(user, conversation, message, created_user, created_conversation)

        return await self._db.run("store the user message", work)

    async def discard_turn(self, turn: OpenedTurn) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
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
                row = conn.execute(f"{_CONVERSATION} WHERE id = ?", (conversation_id,)).fetchone()
                if row is None:
                    raise ConversationNotFound(conversation_id)
                return _insert_message(conn, _conversation(row), message)[0]

        return await self._db.run("store the message", work)

    async def get_user(self, external_user_id: str) -> User | None:
        sql = f"{_USER} WHERE external_id = ?"
        return _first(await self._select("read the user", sql, (external_user_id,), _user))

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        sql = f"{_CONVERSATION} WHERE id = ?"
        found = await self._select("read the conversation", sql, (conversation_id,), _conversation)
        return _first(found)

    async def list_conversations(
        self, user_id: str, *, character_id: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        args: tuple[object, ...]
        if character_id is None:
            where, args = "user_id = ?", (user_id, _limit(limit))
        else:
            where, args = "user_id = ? AND character_id = ?", (user_id, character_id, _limit(limit))
        sql = f"{_CONVERSATION} WHERE {where} {_RECENT_FIRST} LIMIT ?"
        return await self._select("list conversations", sql, args, _conversation)

    async def recent_messages(self, conversation_id: str, *, limit: int) -> list[Message]:
        sql = (
            f"SELECT * FROM ({_MESSAGE} WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?)"
            " ORDER BY seq"
        )
        args = (conversation_id, _limit(limit))
        return await self._select("read recent messages", sql, args, _message)

    async def list_messages(
        self, conversation_id: str, *, after_seq: int = 0, limit: int = 100
    ) -> list[Message]:
        sql = f"{_MESSAGE} WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        args = (conversation_id, after_seq, _limit(limit))
        return await self._select("list messages", sql, args, _message)

    async def _select(
        self, what: str, sql: str, args: tuple[object, ...], as_value: Callable[[Any], T]
    ) -> list[T]:
        def work(conn: Connection) -> list[T]:
            return [as_value(row) for row in conn.execute(sql, args)]

        return await self._db.run(what, work)


# --- statements run inside a transaction on the worker thread ------------------------------


def _ensure_user(conn: Connection, external_id: str) -> tuple[User, bool]:
    row = conn.execute(f"{_USER} WHERE external_id = ?", (external_id,)).fetchone()
    if row is not None:
        return _user(row), False
    user = User(id=_new_id("usr"), external_id=external_id, created_at=_now())
    conn.execute(
        "INSERT INTO users (id, external_id, created_at) VALUES (?, ?, ?)",
        (user.id, user.external_id, _text(user.created_at)),
    )
    return user, True


def _find_conversation(
    conn: Connection, user_id: str, character_id: str, conversation_id: str | None
) -> Conversation | None:
    if conversation_id is None:
        sql = f"{_CONVERSATION} WHERE user_id = ? AND character_id = ? {_RECENT_FIRST} LIMIT 1"
        row = conn.execute(sql, (user_id, character_id)).fetchone()
        return None if row is None else _conversation(row)
    # One query for "exists and is theirs": another user's id looks exactly like an unknown one.
    sql = f"{_CONVERSATION} WHERE id = ? AND user_id = ? AND character_id = ?"
    row = conn.execute(sql, (conversation_id, user_id, character_id)).fetchone()
    if row is None:
        raise ConversationNotFound(conversation_id)
    return _conversation(row)


def _create_conversation(conn: Connection, user_id: str, character_id: str) -> Conversation:
    now = _now()
    conversation = Conversation(_new_id("conv"), user_id, character_id, now, now, last_seq=0)
    conn.execute(
        "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at, last_seq)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (conversation.id, user_id, character_id, _text(now), _text(now)),
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
    stamp = max(_now(), conversation.updated_at + timedelta(microseconds=1))
    seq = conversation.last_seq + 1
    # Every NewMessage field is a Message field; the store adds id, seq and time.
    message = Message(
        id=_new_id("msg"),
        conversation_id=conversation.id,
        seq=seq,
        created_at=stamp,
        **dataclasses.asdict(new),
    )
    values = dataclasses.asdict(message)
    values.update(role=new.role.value, status=new.status.value, created_at=_text(stamp))
    placeholders = ", ".join(f":{name}" for name in values)
    conn.execute(f"INSERT INTO messages ({', '.join(values)}) VALUES ({placeholders})", values)
    conn.execute(
        "UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ?",
        (seq, _text(stamp), conversation.id),
    )
    return message, dataclasses.replace(conversation, last_seq=seq, updated_at=stamp)


# --- values -------------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _now() -> datetime:
    return datetime.now(UTC)


def _text(moment: datetime) -> str:
    # Fixed width with "+00:00": text order is time order.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _first(found: list[T]) -> T | None:
    return found[0] if found else None


def _limit(limit: int) -> int:
    # SQLite reads a negative LIMIT as "no limit".
    return max(limit, 0)


def _user(row: Any) -> User:
    return User(**_with_times(row, "created_at"))


def _conversation(row: Any) -> Conversation:
    return Conversation(**_with_times(row, "created_at", "updated_at"))


def _message(row: Any) -> Message:
    values = _with_times(row, "created_at")
    values.update(role=Role(values["role"]), status=MessageStatus(values["status"]))
    return Message(**values)


def _with_times(row: Any, *names: str) -> dict[str, Any]:
    """The row as keyword arguments, with the named columns parsed into aware datetimes."""
    values: dict[str, Any] = dict(zip(row.keys(), row, strict=True))
    for name in names:
        values[name] = datetime.fromisoformat(values[name])
    return values
