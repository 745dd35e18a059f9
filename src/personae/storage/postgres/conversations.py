"""``ConversationStore`` on PostgreSQL: users, conversations, messages, event logs and state,
shared by every node on the database.

Each write is one transaction on a pooled connection; the conversation's row lock orders
writers from every node (``turn_rows``), so ``seq`` is handed out once and without gaps.
Behaviour, errors and idempotency are the SQLite store's: both pass
``tests/contracts/test_conversation_store.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from personae.core.memory.items import Partition
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
)
from personae.errors import ConversationNotFound, InvalidInput
from personae.storage.postgres import event_log, groups, memory_rows, redo, state
from personae.storage.postgres import turn_rows as rows
from personae.storage.postgres.database import Conn, PostgresDatabase
from personae.storage.postgres.resource import PostgresResource
from personae.storage.postgres.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_FIELDS,
    USER_COLUMNS,
    conversation_of,
    message_of,
    user_of,
)
from personae.storage.sqlite.conversations import Remember
from personae.storage.sqlite.rows import clamp_limit


class PostgresConversationStore(PostgresResource, ConversationStore):
    def __init__(
        self, database: PostgresDatabase | str, *, remember: Remember | None = None
    ) -> None:
        super().__init__(database)
        # With ``remember``, a user message and a reply are stored with their memory items
        # (pending embedding) in the message's own transaction: both or neither.
        self._remember = remember

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

        async def work(conn: Conn) -> OpenedTurn:
            user, created_user = await rows.ensure_user(conn, external_user_id, lock=True)
            if idempotency_key is not None:
                seen = await rows.seen_key(conn, user, idempotency_key)
                if seen is not None:
                    return seen
            conversation = (
                None
                if new_conversation
                else await rows.find_conversation(
                    conn, user.id, character_id, conversation_id, group=group
                )
            )
            created_conversation = conversation is None
            if conversation is None:
                conversation = await rows.create_conversation(conn, user.id, character_id)
                if greeting:  # an empty greeting is no greeting
                    greet = NewMessage(Role.ASSISTANT, greeting)
                    conversation = (await rows.insert_message(conn, conversation, greet))[1]
            message, conversation = await rows.insert_message(
                conn, conversation, NewMessage(Role.USER, text, speaker=speaker)
            )
            await self._memorise(conn, message, conversation)
            if idempotency_key is not None:
                await rows.remember_key(conn, user, idempotency_key, message)
            return OpenedTurn(
                user,
                conversation,
                message,
                created_user,
                created_conversation,
                user_turn=await rows.user_turns(conn, conversation.id),
            )

        return await self._db.run("store the user message", work)

    async def create_group(
        self,
        *,
        owner: str,
        characters: Sequence[str],
        participants: Sequence[str] = (),
        greetings: Sequence[tuple[str, str]] = (),
        seed: str | None = None,
    ) -> Conversation:
        async def work(conn: Conn) -> Conversation:
            # Users in one order (external id) everywhere: two groups made at once with the
            # same new users cannot deadlock on each other's inserts.
            ids = {
                p: (await rows.ensure_user(conn, p))[0].id for p in sorted({owner, *participants})
            }
            others = [ids[p] for p in participants if p != owner]
            conversation = await rows.create_conversation(conn, ids[owner], characters[0])
            await groups.add(conn, conversation.id, characters, others, seed or conversation.id)
            for character_id, text in greetings:
                greeting = NewMessage(Role.ASSISTANT, text, speaker=character_id)
                conversation = (await rows.insert_message(conn, conversation, greeting))[1]
            return conversation

        if not characters:
            raise InvalidInput("a group needs at least two different characters")
        return await self._db.run("start a group", work)

    async def get_group(self, conversation_id: str) -> Group | None:
        return await self._db.read("read a group", lambda conn: groups.read(conn, conversation_id))

    async def set_member_muted(self, conversation_id: str, character_id: str, muted: bool) -> None:
        await self._db.run(
            "mute a group member",
            lambda conn: groups.set_muted(conn, conversation_id, character_id, muted),
        )

    async def discard_turn(self, turn: OpenedTurn) -> None:
        message = turn.message

        async def work(conn: Conn) -> None:
            # Lock the conversation (if it is still there) before moving its last_seq.
            await conn.execute(
                "SELECT 1 FROM conversations WHERE id = %s FOR NO KEY UPDATE",
                (turn.conversation.id,),
            )
            # Cascades to its idempotency key.
            await conn.execute("DELETE FROM messages WHERE id = %s", (message.id,))
            partition = Partition.private(turn.user.id, turn.conversation.character_id)
            await memory_rows.delete_sources(conn, partition, [message.id], message.created_at)
            if turn.created_conversation:
                # Cascades to the greeting.
                await conn.execute(
                    "DELETE FROM conversations WHERE id = %s", (turn.conversation.id,)
                )
            else:
                await conn.execute(rows.RESTORE_CONVERSATION, {"id": turn.conversation.id})
            if turn.created_user:
                await conn.execute(
                    "DELETE FROM users WHERE id = %(id)s AND NOT EXISTS"
                    " (SELECT 1 FROM conversations WHERE user_id = %(id)s)",
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
        async def work(conn: Conn) -> OpenedTurn:
            user = await rows.find_user(conn, external_user_id)
            if user is None:
                raise ConversationNotFound(conversation_id)
            conversation = await rows.conversation_row(conn, conversation_id, lock=True)
            if (
                conversation.user_id != user.id
                or conversation.character_id != character_id
                or await groups.read(conn, conversation_id) is not None  # a group's: no redo
            ):
                raise ConversationNotFound(conversation_id)
            if idempotency_key is not None:
                seen = await rows.seen_key(conn, user, idempotency_key)
                if seen is not None:
                    return seen
            message = await redo.last_user_message(conn, conversation)
            replies = await redo.replies_after(conn, message)
            redo.check_expected(expected, message, replies)
            swipes = None
            if text is None:
                swipes = redo.swipe_group(replies, expected)
            else:
                old = message
                message = await redo.edit(conn, message, text)
                partition = Partition.private(user.id, character_id)
                await memory_rows.delete_sources(conn, partition, [old.id], old.created_at)
                await self._memorise(conn, message, conversation)
            if idempotency_key is not None:
                await rows.remember_key(conn, user, idempotency_key, message)
            return OpenedTurn(
                user,
                conversation,
                message,
                False,
                False,
                user_turn=await rows.user_turns(conn, conversation.id),
                reopened=True,
                swipe_of=swipes,
            )

        return await self._db.run("reopen the turn", work)

    async def choose_swipe(self, conversation_id: str, message_id: str) -> Message:
        async def work(conn: Conn) -> Message:
            await rows.conversation_row(conn, conversation_id, lock=True)
            return await redo.choose(conn, conversation_id, message_id)

        return await self._db.run("choose a reply", work)

    async def append_message(self, conversation_id: str, message: NewMessage) -> Message:
        async def work(conn: Conn) -> Message:
            conversation = await rows.conversation_row(conn, conversation_id, lock=True)
            stored, conversation = await rows.insert_message(conn, conversation, message)
            await self._memorise(conn, stored, conversation)
            return stored

        return await self._db.run("store the message", work)

    async def _memorise(self, conn: Conn, message: Message, conversation: Conversation) -> None:
        if self._remember is not None:
            await memory_rows.insert_items(conn, self._remember(message, conversation), None)

    async def append_events(self, conversation_id: str, records: Sequence[EventRecord]) -> None:
        async def work(conn: Conn) -> None:
            conversation = await rows.conversation_row(conn, conversation_id, lock=True)
            await event_log.append(conn, conversation_id, conversation.last_event_seq, records)

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
        found = await self._select(
            "read the user", f"{USER_COLUMNS} WHERE external_id = %s", (external_user_id,)
        )
        return user_of(found[0]) if found else None

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        found = await self._select(
            "read the conversation", f"{CONVERSATION_COLUMNS} WHERE id = %s", (conversation_id,)
        )
        return conversation_of(found[0]) if found else None

    async def list_conversations(
        self, user_id: str, *, character_id: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        args: tuple[object, ...]
        if character_id is None:
            where, args = "user_id = %s", (user_id, clamp_limit(limit))
        else:
            where = "user_id = %s AND character_id = %s"
            args = (user_id, character_id, clamp_limit(limit))
        sql = f"{CONVERSATION_COLUMNS} WHERE {where} {rows.RECENT_FIRST} LIMIT %s"
        return [conversation_of(row) for row in await self._select("list conversations", sql, args)]

    async def recent_messages(self, conversation_id: str, *, limit: int) -> list[Message]:
        sql = (
            f"SELECT {MESSAGE_FIELDS} FROM ({MESSAGE_COLUMNS} WHERE conversation_id = %s"
            " AND NOT hidden ORDER BY seq DESC LIMIT %s) AS recent ORDER BY seq"
        )
        args = (conversation_id, clamp_limit(limit))
        return [message_of(row) for row in await self._select("read recent messages", sql, args)]

    async def list_messages(
        self,
        conversation_id: str,
        *,
        after_seq: int = 0,
        limit: int = 100,
        alternatives: bool = False,
    ) -> list[Message]:
        visible = "" if alternatives else " AND NOT hidden"
        sql = (
            f"{MESSAGE_COLUMNS} WHERE conversation_id = %s AND seq > %s{visible}"
            " ORDER BY seq LIMIT %s"
        )
        args = (conversation_id, after_seq, clamp_limit(limit))
        return [message_of(row) for row in await self._select("list messages", sql, args)]

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
        state.encode(value)  # bad data is refused before a connection is taken

        async def work(conn: Conn) -> VersionedState:
            await rows.conversation_row(conn, conversation_id, lock=True)
            return await state.write(conn, conversation_id, key, value, expected_version)

        return await self._db.run("store the state", work)

    async def _select(self, what: str, sql: str, args: tuple[object, ...]) -> list[dict[str, Any]]:
        async def work(conn: Conn) -> list[dict[str, Any]]:
            cursor = await conn.execute(sql, args)
            return await cursor.fetchall()

        return await self._db.read(what, work)
