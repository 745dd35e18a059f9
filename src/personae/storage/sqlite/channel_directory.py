"""``ChannelDirectory`` on SQLite: platform identities, link codes (hashed), chat bindings,
chat conversations and the replies a channel still owes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from personae.core.channels import ChannelDirectory, PendingReply
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text


class SqliteChannelDirectory(SqliteResource, ChannelDirectory):
    async def _read_one(self, what: str, sql: str, params: Sequence[Any]) -> Any:
        def work(conn: Connection) -> Any:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else row[0]

        return await self._db.read(what, work)

    async def _write(self, what: str, sql: str, params: Sequence[Any]) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.execute(sql, params)

        await self._db.run(what, work)

    async def user_for(self, platform: str, platform_user: str) -> str | None:
        found = await self._read_one(
            "read a platform identity",
            "SELECT user_external_id FROM platform_identities"
            " WHERE platform = ? AND platform_user = ?",
            (platform, platform_user),
        )
        return None if found is None else str(found)

    async def link(self, platform: str, platform_user: str, user: str, now: datetime) -> None:
        await self._write(
            "link a platform identity",
            "INSERT INTO platform_identities (platform, platform_user, user_external_id,"
            " linked_at) VALUES (?, ?, ?, ?) ON CONFLICT (platform, platform_user) DO UPDATE"
            " SET user_external_id = excluded.user_external_id, linked_at = excluded.linked_at",
            (platform, platform_user, user, as_text(now)),
        )

    async def add_link_code(self, code_hash: str, user: str, expires_at: datetime) -> None:
        await self._write(
            "store a link code",
            "INSERT INTO channel_link_codes (code_hash, user_external_id, expires_at)"
            " VALUES (?, ?, ?)",
            (code_hash, user, as_text(expires_at)),
        )

    async def redeem_link_code(self, code_hash: str, now: datetime) -> str | None:
        def work(conn: Connection) -> str | None:
            with transaction(conn):
                row = conn.execute(
                    "SELECT user_external_id, expires_at FROM channel_link_codes"
                    " WHERE code_hash = ?",
                    (code_hash,),
                ).fetchone()
                # Expired codes go too, whoever tries them.
                conn.execute(
                    "DELETE FROM channel_link_codes WHERE code_hash = ? OR expires_at <= ?",
                    (code_hash, as_text(now)),
                )
            if row is None or row[1] <= as_text(now):
                return None
            return str(row[0])

        return await self._db.run("redeem a link code", work)

    async def binding(self, platform: str, chat: str) -> str | None:
        found = await self._read_one(
            "read a chat binding",
            "SELECT character_id FROM channel_chats WHERE platform = ? AND chat = ?",
            (platform, chat),
        )
        return None if found is None else str(found)

    async def bind(self, platform: str, chat: str, character_id: str) -> None:
        await self._write(
            "bind a chat to a character",
            "INSERT INTO channel_chats (platform, chat, character_id) VALUES (?, ?, ?)"
            " ON CONFLICT (platform, chat) DO UPDATE SET character_id = excluded.character_id",
            (platform, chat, character_id),
        )

    async def chat_conversation(
        self, platform: str, chat: str, user: str, character_id: str
    ) -> str | None:
        found = await self._read_one(
            "read a chat conversation",
            "SELECT conversation_id FROM channel_conversations WHERE platform = ? AND chat = ?"
            " AND user_external_id = ? AND character_id = ?",
            (platform, chat, user, character_id),
        )
        return None if found is None else str(found)

    async def set_chat_conversation(
        self, platform: str, chat: str, user: str, character_id: str, conversation_id: str | None
    ) -> None:
        if conversation_id is None:
            await self._write(
                "forget a chat conversation",
                "DELETE FROM channel_conversations WHERE platform = ? AND chat = ?"
                " AND user_external_id = ? AND character_id = ?",
                (platform, chat, user, character_id),
            )
            return
        await self._write(
            "remember a chat conversation",
            "INSERT INTO channel_conversations (platform, chat, user_external_id, character_id,"
            " conversation_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT"
            " (platform, chat, user_external_id, character_id)"
            " DO UPDATE SET conversation_id = excluded.conversation_id",
            (platform, chat, user, character_id, conversation_id),
        )

    async def add_pending_reply(self, reply: PendingReply) -> None:
        await self._write(
            "remember a pending reply",
            "INSERT INTO channel_pending_replies (channel, reply_to, chat, user_external_id,"
            " conversation_id, after_seq, platform_message) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (channel, reply_to) DO NOTHING",
            (
                reply.channel,
                reply.reply_to,
                reply.chat,
                reply.user,
                reply.conversation_id,
                reply.after_seq,
                reply.platform_message,
            ),
        )

    async def remove_pending_reply(self, channel: str, reply_to: str) -> None:
        await self._write(
            "forget a pending reply",
            "DELETE FROM channel_pending_replies WHERE channel = ? AND reply_to = ?",
            (channel, reply_to),
        )

    async def pending_replies(self, channel: str) -> list[PendingReply]:
        def work(conn: Connection) -> list[PendingReply]:
            rows = conn.execute(
                "SELECT channel, chat, user_external_id, conversation_id, reply_to, after_seq,"
                " platform_message FROM channel_pending_replies WHERE channel = ?"
                " ORDER BY rowid",
                (channel,),
            ).fetchall()
            return [
                PendingReply(
                    channel=r[0],
                    chat=r[1],
                    user=r[2],
                    conversation_id=r[3],
                    reply_to=r[4],
                    after_seq=r[5],
                    platform_message=r[6],
                )
                for r in rows
            ]

        return await self._db.read("read pending replies", work)
