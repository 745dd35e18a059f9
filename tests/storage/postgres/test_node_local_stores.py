"""With ``storage: postgres`` the stores that stay in the node's SQLite file (reminders, turn
records, experiment turns) refer to conversations kept in PostgreSQL: the SQLite file does not
check those references (it cannot), so they store; with SQLite it still does."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.app.database import open_stores, sqlite_database
from personae.core.reminder_store import NewReminder
from personae.errors import StorageError
from personae.settings import Settings
from personae.storage.sqlite.reminders import SqliteReminderStore

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


def reminder(conversation_id: str) -> NewReminder:
    return NewReminder(
        user="sam",
        character_id="aria",
        conversation_id=conversation_id,
        text="stretch",
        due_at=NOW + timedelta(minutes=5),
    )


async def test_a_reminder_for_a_conversation_in_postgres_is_stored(
    pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, storage={"backend": "postgres", "postgres_url": pg_url})
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, sqlite)
        opened = await stores.conversations.open_turn(
            external_user_id="sam", character_id="aria", text="Remind me later."
        )
        reminders = await stack.enter_async_context(SqliteReminderStore(sqlite))
        stored = await reminders.add(reminder(opened.conversation.id), now=NOW, max_pending=5)
        assert [r.id for r in await reminders.pending("sam")] == [stored.id]


async def test_with_sqlite_the_reference_is_still_checked(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(sqlite_database(settings))
        reminders = await stack.enter_async_context(SqliteReminderStore(sqlite))
        with pytest.raises(StorageError):
            await reminders.add(reminder("conv_nowhere"), now=NOW, max_pending=5)
