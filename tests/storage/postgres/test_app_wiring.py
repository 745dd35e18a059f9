"""The composition root's storage choice (``app/database.py: open_stores``): with
``storage: postgres`` both stores share one pool, the memory hook writes in the message's
transaction, and the node's SQLite file keeps only the other stores."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from personae.app.database import open_stores, sqlite_database
from personae.core.memory.capture import memories_of
from personae.core.memory.items import EmbeddingSpace, Partition
from personae.errors import StorageError
from personae.settings import Settings
from personae.storage.postgres import PostgresConversationStore, PostgresMemoryStore
from personae.storage.sqlite import SqliteConversationStore


async def test_settings_give_one_pool_and_both_stores_on_it(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage={
            "backend": "postgres",
            "postgres_url": pg_url,
            "postgres_pool_min": 1,
            "postgres_pool_max": 3,
        },
    )
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, sqlite, remember=memories_of)
        memory = stores.memory(EmbeddingSpace("fake", 8))
        await stack.enter_async_context(memory)
        assert isinstance(stores.conversations, PostgresConversationStore)
        assert isinstance(memory, PostgresMemoryStore)
        opened = await stores.conversations.open_turn(
            external_user_id="alice", character_id="mira", text="My name is Sam."
        )
        items = await memory.list_items(Partition.private(opened.user.id, "mira"))
        assert {item.kind for item in items} == {"message", "fact:name"}
        # Nothing of it went to the node's SQLite file.
        async with SqliteConversationStore(sqlite) as local:
            assert await local.get_user("alice") is None
    # The pool closed with the stack: a call now is refused at once, not hung.
    with pytest.raises(StorageError, match="not open"):
        await stores.conversations.get_user("alice")


async def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, sqlite)
        assert isinstance(stores.conversations, SqliteConversationStore)
