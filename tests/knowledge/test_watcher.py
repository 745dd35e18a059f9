"""The knowledge watcher on a real folder with real file system events: additions, edits,
a whole folder removed, and a broken PDF that keeps its chunks. Every wait is a deadline
polled, never a measured time."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from personae.core.memory.items import EmbeddingSpace, Partition
from personae.core.memory.knowledge import Chunking
from personae.knowledge.indexer import KnowledgeIndexer
from personae.knowledge.watcher import KnowledgeWatcher
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeEmbedder
from tests.knowledge.pdfs import make_pdf

DEADLINE_S = 15.0
ARIA = Partition.knowledge("aria")


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the change was not indexed in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def watching(tmp_path: Path) -> AsyncIterator[tuple[KnowledgeWatcher, SqliteMemoryStore]]:
    root = tmp_path / "knowledge"
    (root / "aria").mkdir(parents=True)
    (root / "aria" / "before.txt").write_text("written before the watch started")
    embedder = FakeEmbedder()
    space = EmbeddingSpace(embedder.model_name, embedder.dimension)
    async with SqliteMemoryStore(tmp_path / "p.db", space=space) as store:
        indexer = KnowledgeIndexer(store, root, embedder=embedder, chunking=Chunking(20, 5))
        watcher = KnowledgeWatcher(indexer, debounce_ms=300, step_ms=20, idle_ms=100)
        task = asyncio.create_task(watcher.run_forever())
        try:
            await eventually(lambda: asyncio.sleep(0, watcher.syncs >= 1))  # caught up
            yield watcher, store
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def texts(store: SqliteMemoryStore, partition: Partition = ARIA) -> set[str]:
    return {item.text for item in await store.list_items(partition, limit=1000)}


async def test_changes_to_the_folder_are_indexed_as_they_happen(
    watching: tuple[KnowledgeWatcher, SqliteMemoryStore], tmp_path: Path
) -> None:
    watcher, store = watching
    root = watcher.indexer.root
    assert await texts(store) == {"written before the watch started"}

    (root / "aria" / "menu.md").write_text("Soup of the day: lentils.")
    await eventually(lambda: has(store, "Soup of the day: lentils."))

    (root / "aria" / "menu.md").write_text("Soup of the day: tomato.")
    await eventually(lambda: has(store, "Soup of the day: tomato."))
    assert "Soup of the day: lentils." not in await texts(store)

    (root / "aria" / "guide.pdf").write_bytes(make_pdf([["The ferry leaves at nine."]]))
    await eventually(lambda: has(store, "The ferry leaves at nine."))
    (root / "aria" / "guide.pdf").write_bytes(b"%PDF-1.4\nbroken")
    (root / "aria" / "after.txt").write_text("a later file")  # proves the batch was handled
    await eventually(lambda: has(store, "a later file"))
    assert "The ferry leaves at nine." in await texts(store)  # the broken PDF kept its chunk

    (root / "_all").mkdir()
    (root / "_all" / "shared.txt").write_text("every character knows this")
    await eventually(lambda: has(store, "every character knows this", Partition.knowledge()))

    shutil.rmtree(root / "aria")
    await eventually(lambda: empty(store))


async def has(store: SqliteMemoryStore, text: str, partition: Partition = ARIA) -> bool:
    return text in await texts(store, partition)


async def empty(store: SqliteMemoryStore) -> bool:
    return not await texts(store)
