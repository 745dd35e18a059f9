"""``ConversationStore`` on SQLite: users, conversations, messages and event logs in one file.

Every write is one ``BEGIN IMMEDIATE`` transaction on the store's single worker thread, so a
method stores everything or nothing, and ``seq`` (``conversations.last_seq + 1``) cannot be
handed out twice, even to another process writing the same file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from personae.core.memory.items import NewMemory, Partition
from personae.core.ports import ConversationStore, VersionedState
from personae.core.types import (
    Conversation,
    EventRecord,
    Group,
    Message,
    NewMessage,
    OpenedTurn,
    Role,
    User,
    newest,
)
from personae.errors import ConversationNotFound, InvalidInput
from personae.storage.sqlite import event_log, groups, memory_rows, redo, state
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.message_windows import (
    MessageWindows,
    Window,
    read_window,
    window_after_write,
)
from personae.storage.sqlite.resource import SqliteResource
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


#: Every turn counts these; ``role = 'user'`` written as in the ``messages_user_turns`` partial
#: index, so that SQLite answers from it alone.
USER_TURNS = "SELECT count(*) FROM messages WHERE conversation_id = ? AND role = 'user'"

#: What a stored message leaves in long-term memory (``core.memory.capture.memories_of``).
Remember = Callable[[Message, Conversation], Sequence[NewMemory]]


class SqliteConversationStore(SqliteResource, ConversationStore):
    def __init__(
        self,
        database: SqliteDatabase | Path,
        *,
        remember: Remember | None = None,
        windows: MessageWindows | None = None,
    ) -> None:
        super().__init__(database)
        # With ``remember``, a user message and a reply are stored with their memory items
        # (pending embedding) in the message's own transaction: both or neither.
        self._remember = remember
        self._windows = windows if windows is not None else MessageWindows()

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
        speaker: str | None = None,
        group: bool = False,
    ) -> OpenedTurn:
        if group and conversation_id is None:
            raise InvalidInput("a message to a group names its conversation")
        if new_conversation and conversation_id is not None:
            raise InvalidInput("name a conversation or ask for a new one, not both")

        def work(conn: Connection) -> tuple[OpenedTurn, Window | None]:
            with transaction(conn):
                user, created_user = _ensure_user(conn, external_user_id)
                if idempotency_key is not None:
                    seen = _seen_key(conn, user, idempotency_key)
                    if seen is not None:
                        return seen, None
                conversation = (
                    None
                    if new_conversation
                    else _find_conversation(
                        conn, user.id, character_id, conversation_id, group=group
                    )
                )
                created_conversation = conversation is None
                if conversation is None:
                    conversation = _create_conversation(conn, user.id, character_id)
                    if greeting:  # an empty greeting is no greeting
                        greet = NewMessage(Role.ASSISTANT, greeting)
                        conversation = _insert_message(conn, conversation, greet)[1]
                message, conversation = _insert_message(
                    conn, conversation, NewMessage(Role.USER, text, speaker=speaker)
                )
                self._memorise(conn, message, conversation)
                if idempotency_key is not None:
                    _remember_key(conn, user, idempotency_key, message)
                user_turn = _user_turns(conn, conversation.id)
                # The prompt's history, while the transaction is at hand: the window kept
                # from the conversation's last read and the messages after it.
                held = self._windows.peek(conversation.id)
                window = None if held is None else window_after_write(conn, conversation.id, held)
                opened = OpenedTurn(
                    user,
                    conversation,
                    message,
                    created_user,
                    created_conversation,
                    user_turn=user_turn,
                    recent=None if window is None else window.messages,
                    recent_complete=window is not None and window.complete,
                )
                return opened, window

        opened, window = await self._db.run("store the user message", work)
        if window is not None:
            self._windows.put(opened.conversation.id, window, reused=True)
        return opened

    async def create_group(
        self,
        *,
        owner: str,
        characters: Sequence[str],
        participants: Sequence[str] = (),
        greetings: Sequence[tuple[str, str]] = (),
        seed: str | None = None,
    ) -> Conversation:
        def work(conn: Connection) -> Conversation:
            with transaction(conn):
                user, _ = _ensure_user(conn, owner)
                others = [_ensure_user(conn, p)[0].id for p in participants if p != owner]
                conversation = _create_conversation(conn, user.id, characters[0])
                groups.add(conn, conversation.id, characters, others, seed or conversation.id)
                for character_id, text in greetings:
                    greeting = NewMessage(Role.ASSISTANT, text, speaker=character_id)
                    conversation = _insert_message(conn, conversation, greeting)[1]
                return conversation

        if not characters:
            raise InvalidInput("a group needs at least two different characters")
        return await self._db.run("start a group", work)

    async def get_group(self, conversation_id: str) -> Group | None:
        return await self._db.read("read a group", lambda conn: groups.read(conn, conversation_id))

    async def set_member_muted(self, conversation_id: str, character_id: str, muted: bool) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                groups.set_muted(conn, conversation_id, character_id, muted)

        await self._db.run("mute a group member", work)

    async def discard_turn(self, turn: OpenedTurn) -> None:
        message = turn.message

        def work(conn: Connection) -> None:
            with transaction(conn):
                # Cascades to its idempotency key.
                conn.execute("DELETE FROM messages WHERE id = ?", (turn.message.id,))
                memory_rows.delete_sources(conn, _partition(turn), [message.id], message.created_at)
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

    async def reopen_turn(
        self,
        conversation_id: str,
        *,
        external_user_id: str,
        character_id: str,
        text: str | None = None,
        expected: str | None = None,
        idempotency_key: str | None = None,
    ) -> OpenedTurn:
        def work(conn: Connection) -> OpenedTurn:
            with transaction(conn):
                user = _find_user(conn, external_user_id)
                conversation = _conversation(conn, conversation_id) if user else None
                if (
                    user is None
                    or conversation is None
                    or conversation.user_id != user.id
                    or conversation.character_id != character_id
                    or groups.read(conn, conversation_id) is not None  # a group's: no redo
                ):
                    raise ConversationNotFound(conversation_id)
                if idempotency_key is not None:
                    seen = _seen_key(conn, user, idempotency_key)
                    if seen is not None:
                        return seen
                message = redo.last_user_message(conn, conversation)
                replies = redo.replies_after(conn, message)
                redo.check_expected(expected, message, replies)
                group = None
                if text is None:
                    group = redo.swipe_group(replies, expected)
                else:
                    old = message
                    message = redo.edit(conn, message, text)
                    partition = Partition.private(user.id, character_id)
                    memory_rows.delete_sources(conn, partition, [old.id], old.created_at)
                    self._memorise(conn, message, conversation)
                if idempotency_key is not None:
                    _remember_key(conn, user, idempotency_key, message)
                user_turn = _user_turns(conn, conversation.id)
                return OpenedTurn(
                    user,
                    conversation,
                    message,
                    False,
                    False,
                    user_turn=user_turn,
                    reopened=True,
                    swipe_of=group,
                )

        return await self._db.run("reopen the turn", work)

    async def choose_swipe(self, conversation_id: str, message_id: str) -> Message:
        def work(conn: Connection) -> Message:
            with transaction(conn):
                return redo.choose(conn, conversation_id, message_id)

        return await self._db.run("choose a reply", work)

    async def append_message(self, conversation_id: str, message: NewMessage) -> Message:
        def work(conn: Connection) -> Message:
            with transaction(conn):
                conversation = _conversation(conn, conversation_id)
                stored, conversation = _insert_message(conn, conversation, message)
                self._memorise(conn, stored, conversation)
                return stored

        return await self._db.run("store the message", work)

    def _memorise(self, conn: Connection, message: Message, conversation: Conversation) -> None:
        if self._remember is not None:
            memory_rows.insert_items(conn, self._remember(message, conversation), None)

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
        return await self._db.read(
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
        limit = clamp_limit(limit)
        held = self._windows.get(conversation_id)
        window, reused = await self._db.read(
            "read recent messages", lambda conn: read_window(conn, conversation_id, limit, held)
        )
        if window is None:
            self._windows.discard(conversation_id)
            return []
        self._windows.put(conversation_id, window, reused=reused)
        return newest(window.messages, limit)

    async def list_messages(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        limit: int = 100,
        alternatives: bool = False,
    ) -> list[Message]:
        visible = "" if alternatives else " AND hidden = 0"
        sql = (
            f"{MESSAGE_COLUMNS} WHERE conversation_id = ? AND seq > ?{visible} ORDER BY seq LIMIT ?"
        )
        args = (conversation_id, after_seq, clamp_limit(limit))
        return await self._select("list messages", sql, args, message_of)

    async def get_state(self, conversation_id: str, key: str) -> VersionedState | None:
        return await self._db.read(
            "read the state", lambda conn: state.read(conn, conversation_id, key)
        )

    async def put_state(
        self,
        conversation_id: str,
        key: str,
        value: Mapping[str, Any],
        expected_version: int | None,
    ) -> VersionedState:
        state.encode(value)  # bad data is refused before the worker thread is bothered

        def work(conn: Connection) -> VersionedState:
            with transaction(conn):
                _conversation(conn, conversation_id)  # raises ConversationNotFound
                return state.write(conn, conversation_id, key, value, expected_version)

        return await self._db.run("store the state", work)

    async def _select(
        self, what: str, sql: str, args: tuple[object, ...], as_value: Callable[[Any], T]
    ) -> list[T]:
        def work(conn: Connection) -> list[T]:
            return [as_value(row) for row in conn.execute(sql, args)]

        return await self._db.read(what, work)


def _partition(turn: OpenedTurn) -> Partition:
    return Partition.private(turn.user.id, turn.conversation.character_id)


# --- statements run inside a transaction on the worker thread ------------------------------


def _find_user(conn: Connection, external_id: str) -> User | None:
    row = conn.execute(f"{USER_COLUMNS} WHERE external_id = ?", (external_id,)).fetchone()
    return None if row is None else user_of(row)


def _ensure_user(conn: Connection, external_id: str) -> tuple[User, bool]:
    found = _find_user(conn, external_id)
    if found is not None:
        return found, False
    user = User(id=new_id("usr"), external_id=external_id, created_at=now())
    conn.execute(
        "INSERT INTO users (id, external_id, created_at) VALUES (?, ?, ?)",
        (user.id, user.external_id, as_text(user.created_at)),
    )
    return user, True


def _user_turns(conn: Connection, conversation_id: str) -> int:
    """The user's messages in the conversation: the lorebook's turn counter."""
    (count,) = conn.execute(USER_TURNS, (conversation_id,)).fetchone()
    return int(count)


def _remember_key(conn: Connection, user: User, key: str, message: Message) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, message_id, created_at) VALUES (?, ?, ?, ?)",
        (user.id, key, message.id, as_text(now())),
    )


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
    conn: Connection,
    user_id: str,
    character_id: str,
    conversation_id: str | None,
    *,
    group: bool = False,
) -> Conversation | None:
    """The conversation a turn writes to. A group's is found only by a group turn
    (``group``), and a one-to-one chat never by one."""
    is_group = (
        "EXISTS (SELECT 1 FROM conversation_groups g WHERE g.conversation_id = conversations.id)"
    )
    if conversation_id is None:
        sql = (
            f"{CONVERSATION_COLUMNS} WHERE user_id = ? AND character_id = ? AND NOT {is_group}"
            f" {_RECENT_FIRST} LIMIT 1"
        )
        row = conn.execute(sql, (user_id, character_id)).fetchone()
        return None if row is None else conversation_of(row)
    # One query for "exists and is theirs" (owned, or a group they take part in): another
    # user's id looks exactly like an unknown one.
    sql = (
        f"{CONVERSATION_COLUMNS} WHERE id = ? AND character_id = ? AND {is_group} = ?"
        " AND (user_id = ? OR EXISTS (SELECT 1 FROM conversation_participants p"
        " WHERE p.conversation_id = conversations.id AND p.user_id = ?))"
    )
    row = conn.execute(sql, (conversation_id, character_id, group, user_id, user_id)).fetchone()
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


_NEW_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(NewMessage))
_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Message))
_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_MESSAGE_FIELDS)})"
    f" VALUES ({', '.join(f':{name}' for name in _MESSAGE_FIELDS)})"
)


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
    if new.swipe_of is not None:  # a regenerated reply: the one shown of its alternatives
        redo.hide_alternatives(conn, conversation.id, new.swipe_of)
    # Every NewMessage field is a Message field; the store adds id, seq and time. Fields are
    # copied by name, not with dataclasses.asdict: they are all scalars, and asdict's deep
    # copy cost more than the INSERT.
    message = Message(
        id=new_id("msg"),
        conversation_id=conversation.id,
        seq=seq,
        created_at=stamp,
        **{name: getattr(new, name) for name in _NEW_MESSAGE_FIELDS},
    )
    values = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
    values.update(role=new.role.value, status=new.status.value, created_at=as_text(stamp))
    conn.execute(_INSERT_MESSAGE, values)
    conn.execute(
        "UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ?",
        (seq, as_text(stamp), conversation.id),
    )
    return message, dataclasses.replace(conversation, last_seq=seq, updated_at=stamp)
