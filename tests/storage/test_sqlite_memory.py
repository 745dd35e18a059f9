"""What only the SQLite memory store promises: its indexes move with the items, the SQL runs
inside someone else's transaction, and a new embedder means re-embedding, not mixing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite import memory_rows as sql
from personae.storage.sqlite.connection import connect, transaction
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.storage.sqlite.migrations import migrate
from personae.testing import FakeEmbedder

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ALICE = Partition.private("u-alice", "mira")
OLD = FakeEmbedder(dimension=16, model_name="old-model")
NEW = FakeEmbedder(dimension=24, model_name="new-model")


def space(embedder: FakeEmbedder) -> EmbeddingSpace:
    return EmbeddingSpace(embedder.model_name, embedder.dimension)


def counts(path: Path) -> dict[str, int]:
    conn = connect(path)
    try:
        names = ["memory_items", "memory_fts"] + [t.name for t in sql.all_vector_tables(conn)]
        return {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names}
    finally:
        conn.close()


def new(text: str, embedder: FakeEmbedder | None = OLD) -> NewMemory:
    vector = tuple(embedder.vector(text)) if embedder else None
    return NewMemory(ALICE, text, NOW, embedding=vector)


async def test_the_full_text_and_vector_rows_go_with_their_items(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMemoryStore(path, space=space(OLD)) as store:
        await store.add([new("one apple"), new("two apples"), new("pending", None)])
        assert counts(path) == {"memory_items": 3, "memory_fts": 3, "memory_vectors_1": 2}
        await store.delete(ALICE)
    assert counts(path) == {"memory_items": 0, "memory_fts": 0, "memory_vectors_1": 0}


async def test_a_new_embedder_makes_every_item_pending_in_its_own_space(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMemoryStore(path, space=space(OLD)) as store:
        added = await store.add([new("red kite"), new("blue heron")])
    async with SqliteMemoryStore(path, space=space(NEW)) as store:
        assert [i.id for i in await store.pending_embeddings()] == [i.id for i in added]
        # Until re-embedded, the new model's vectors meet no old vectors: text still works.
        hits = await store.search([ALICE], text="kite", vector=NEW.vector("kite"), now=NOW)
        assert [(h.item.text, h.vector_rank) for h in hits] == [("red kite", None)]
        await store.set_embeddings({i.id: NEW.vector(i.text) for i in added})
        assert await store.pending_embeddings() == []
        hits = await store.search([ALICE], text="?", vector=NEW.vector("blue heron"), now=NOW)
        assert hits[0].item.text == "blue heron"
    # Each vector lives in exactly one space: the old table emptied as items moved.
    assert counts(path) == {
        "memory_items": 2,
        "memory_fts": 2,
        "memory_vectors_1": 0,
        "memory_vectors_2": 2,
    }


async def test_items_can_be_written_in_another_stores_transaction(tmp_path: Path) -> None:
    """What a later step needs: a message and its memory item, all or nothing."""
    path = tmp_path / "m.db"
    async with SqliteConversationStore(path), SqliteMemoryStore(path, space=space(OLD)):
        pass  # both schemas in one file
    conn: Any = connect(path)
    try:
        migrate(conn)
        with pytest.raises(RuntimeError), transaction(conn):
            table = sql.vector_table(conn, space(OLD))
            sql.insert_items(conn, [new("rolled back")], table)
            raise RuntimeError("the message write failed")
        with transaction(conn):
            sql.insert_items(
                conn, [new("kept with its message")], sql.vector_table(conn, space(OLD))
            )
    finally:
        conn.close()
    assert counts(path) == {"memory_items": 1, "memory_fts": 1, "memory_vectors_1": 1}
    async with SqliteMemoryStore(path, space=space(OLD)) as store:
        hits = await store.search([ALICE], text="kept", vector=OLD.vector("kept"), now=NOW)
        assert [h.item.text for h in hits] == ["kept with its message"]


async def test_vector_search_touches_only_the_queried_partition(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    others = [Partition.private(f"u{n}", "mira") for n in range(5)]
    async with SqliteMemoryStore(path, space=space(OLD)) as store:
        for other in others:
            text = "the same words everywhere"
            await store.add([NewMemory(other, text, NOW, embedding=tuple(OLD.vector(text)))])
        await store.add([new("something else entirely")])
        hits = await store.search(
            [ALICE], text="?", vector=OLD.vector("the same words everywhere"), now=NOW
        )
    assert [h.item.partition for h in hits] == [ALICE]
