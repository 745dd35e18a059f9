"""Column lists and row -> value conversions of the PostgreSQL store. Rows are dicts
(``dict_row``); times come back as aware UTC datetimes (the session's TimeZone)."""

from __future__ import annotations

from typing import Any

from personae.core.types import Conversation, Message, MessageStatus, Role, User

USER_COLUMNS = "SELECT id, external_id, created_at FROM users"
CONVERSATION_COLUMNS = (
    "SELECT id, user_id, character_id, created_at, updated_at, last_seq, last_event_seq"
    " FROM conversations"
)
MESSAGE_FIELDS = (
    "id, conversation_id, seq, role, content, created_at, status, model, prompt_tokens,"
    " completion_tokens, latency_ms, character_version, speaker, swipe_of, hidden, edited_at"
)
MESSAGE_COLUMNS = f"SELECT {MESSAGE_FIELDS} FROM messages"


def user_of(row: dict[str, Any]) -> User:
    return User(**row)


def conversation_of(row: dict[str, Any]) -> Conversation:
    return Conversation(**row)


def message_of(row: dict[str, Any]) -> Message:
    values = dict(row)
    values.update(role=Role(values["role"]), status=MessageStatus(values["status"]))
    return Message(**values)
