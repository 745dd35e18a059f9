"""Row <-> value conversions and small helpers shared by the SQLite store's modules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

from personae.core.types import Conversation, Message, MessageStatus, Role, User

T = TypeVar("T")

USER_COLUMNS = "SELECT id, external_id, created_at FROM users"
CONVERSATION_COLUMNS = (
    "SELECT id, user_id, character_id, created_at, updated_at, last_seq, last_event_seq"
    " FROM conversations"
)
MESSAGE_COLUMNS = (
    "SELECT id, conversation_id, seq, role, content, created_at, status, model, prompt_tokens,"
    " completion_tokens, latency_ms, character_version, speaker, swipe_of, hidden, edited_at"
    " FROM messages"
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def now() -> datetime:
    return datetime.now(UTC)


def as_text(moment: datetime) -> str:
    # Fixed width with "+00:00": text order is time order.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def first(found: list[T]) -> T | None:
    return found[0] if found else None


def clamp_limit(limit: int) -> int:
    # SQLite reads a negative LIMIT as "no limit".
    return max(limit, 0)


def user_of(row: Any) -> User:
    return User(**with_times(row, "created_at"))


def conversation_of(row: Any) -> Conversation:
    return Conversation(**with_times(row, "created_at", "updated_at"))


_ROLES = {role.value: role for role in Role}
_STATUSES = {status.value: status for status in MessageStatus}


def message_of(row: Any) -> Message:
    """A row of ``MESSAGE_COLUMNS``, by position: every turn reads up to a whole history
    window of messages, and going through a dict of the row and the enums' constructors cost
    three times as much as the query."""
    (
        id_,
        conversation_id,
        seq,
        role,
        content,
        created_at,
        status,
        model,
        prompt_tokens,
        completion_tokens,
        latency_ms,
        character_version,
        speaker,
        swipe_of,
        hidden,
        edited_at,
    ) = row
    return Message(
        id=id_,
        conversation_id=conversation_id,
        seq=seq,
        role=_ROLES[role],
        content=content,
        created_at=datetime.fromisoformat(created_at),
        status=_STATUSES[status],
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        character_version=character_version,
        speaker=speaker,
        swipe_of=swipe_of,
        hidden=bool(hidden),
        edited_at=None if edited_at is None else datetime.fromisoformat(edited_at),
    )


def with_times(row: Any, *names: str) -> dict[str, Any]:
    """The row as keyword arguments, with the named columns parsed into aware datetimes."""
    values: dict[str, Any] = dict(zip(row.keys(), row, strict=True))
    for name in names:
        values[name] = datetime.fromisoformat(values[name])
    return values
