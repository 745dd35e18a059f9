"""The indexer against a real SQLite memory store: documents become chunk items, changes
move only what changed, deletions and shrinks remove chunks, a broken PDF keeps the old ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from personae.core.memory.items import EmbeddingSpace, MemoryItem, Partition
from personae.core.memory.knowledge import Chunking, ChunkRef
from personae.knowledge.indexer import KnowledgeIndexer, SyncReport
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeEmbedder
from tests.knowledge.pdfs import make_pdf

ARIA = Partition.knowledge("aria")
SHARED = Partition.knowledge()
SMALL = Chunking(max_words=6, overlap_words=2)


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
async def store(tmp_path: Path, embedder: FakeEmbedder) -> AsyncIterator[SqliteMemoryStore]:
    space = EmbeddingSpace(embedder.model_name, embedder.dimension)
    async with SqliteMemoryStore(tmp_path / "p.db", space=space) as store:
        yield store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "knowledge" / "aria").mkdir(parents=True)
    (tmp_path / "knowledge" / "_all").mkdir()
    return tmp_path / "knowledge"


def indexer(store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder) -> KnowledgeIndexer:
    return KnowledgeIndexer(store, root, embedder=embedder, chunking=SMALL)


async def chunks(store: SqliteMemoryStore, partition: Partition) -> dict[str, MemoryItem]:
    """The partition's chunk items by citation."""
    found = {}
    for item in await store.list_items(partition, limit=1000):
        ref = ChunkRef.of_kind(item.kind)
        assert ref is not None
        found[ref.citation] = item
    return found


WORDS = "one two three four five six seven eight nine ten"


async def test_documents_become_embedded_chunks_in_their_partitions(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    (root / "aria" / "guides").mkdir()
    (root / "aria" / "guides" / "hours.md").write_text(WORDS)
    (root / "_all" / "faq.html").write_text("<p>Shared <b>answer</b></p>")
    (root / "stray.txt").write_text("in no partition folder")
    (root / "aria" / ".draft.md").write_text("hidden")

    report = await indexer(store, root, embedder).sync_all()

    assert report == SyncReport(indexed=2, chunks_added=3)
    aria = await chunks(store, ARIA)
    assert sorted(aria) == ["guides/hours.md#0", "guides/hours.md#1"]
    assert aria["guides/hours.md#0"].text == "one two three four five six"
    assert aria["guides/hours.md#1"].text == "five six seven eight nine ten"
    shared = await chunks(store, SHARED)
    assert [item.text for item in shared.values()] == ["Shared answer"]
    assert all(i.embedding_space == store.space for i in [*aria.values(), *shared.values()])
    assert await store.pending_embeddings() == []


async def test_an_unchanged_file_is_not_re_embedded_even_by_a_new_indexer(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    (root / "aria" / "a.txt").write_text(WORDS)
    await indexer(store, root, embedder).sync_all()
    before = await chunks(store, ARIA)
    embedder.calls.clear()

    # A restart: the new indexer reads the file, finds every chunk stored, writes nothing.
    again = indexer(store, root, embedder)
    assert await again.sync_all() == SyncReport(unchanged=1)
    (root / "aria" / "a.txt").touch()
    assert await again.sync_files([root / "aria" / "a.txt"]) == SyncReport(unchanged=1)

    assert embedder.calls == []
    assert await chunks(store, ARIA) == before


async def test_an_edit_re_embeds_only_the_chunks_it_changed(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    file = root / "aria" / "a.txt"
    file.write_text(WORDS)
    docs = indexer(store, root, embedder)
    await docs.sync_all()
    first = (await chunks(store, ARIA))["a.txt#0"]
    embedder.calls.clear()

    file.write_text(WORDS.replace("ten", "TEN"))
    report = await docs.sync_files([file])

    assert report == SyncReport(indexed=1, chunks_added=1, chunks_removed=1)
    assert embedder.calls == [["five six seven eight nine TEN"]]
    after = await chunks(store, ARIA)
    assert after["a.txt#0"] == first  # the same item, vector and all
    assert after["a.txt#1"].text == "five six seven eight nine TEN"


async def test_a_shrunk_file_loses_its_tail_and_a_deleted_one_everything(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    file, other = root / "aria" / "a.txt", root / "aria" / "b.txt"
    file.write_text(WORDS)
    other.write_text("kept as it is")
    docs = indexer(store, root, embedder)
    await docs.sync_all()

    file.write_text("one two three four five six")
    assert await docs.sync_files([file]) == SyncReport(indexed=1, chunks_removed=1)
    assert sorted(await chunks(store, ARIA)) == ["a.txt#0", "b.txt#0"]

    file.unlink()
    assert await docs.sync_files([file]) == SyncReport(removed=1, chunks_removed=1)
    assert sorted(await chunks(store, ARIA)) == ["b.txt#0"]


async def test_files_deleted_while_nobody_watched_go_at_the_next_full_sync(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    (root / "aria" / "a.txt").write_text(WORDS)
    (root / "_all" / "b.txt").write_text("shared words")
    await indexer(store, root, embedder).sync_all()
    (root / "aria" / "a.txt").unlink()
    (root / "_all" / "b.txt").unlink()

    report = await indexer(store, root, embedder).sync_all()  # a restart

    assert report == SyncReport(removed=2, chunks_removed=3)
    assert await store.list_items(ARIA) == []
    assert await store.list_items(SHARED) == []


async def test_a_broken_pdf_keeps_the_old_chunks_and_logs_a_clear_error(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    pdf = root / "aria" / "guide.pdf"
    pdf.write_bytes(make_pdf([["The ferry leaves at nine."]]))
    docs = indexer(store, root, embedder)
    await docs.sync_all()
    before = await chunks(store, ARIA)

    pdf.write_bytes(b"%PDF-1.4\ngarbage written by a crashing exporter")
    with structlog.testing.capture_logs() as logs:
        report = await docs.sync_files([pdf])

    assert report == SyncReport(failed=1)
    assert await chunks(store, ARIA) == before
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert error["document"] == str(pdf)
    assert "guide.pdf: not a readable PDF" in error["error"]
    assert error["chunks_kept"] == 1


async def test_with_the_embedder_down_chunks_are_stored_pending(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    (root / "aria" / "a.txt").write_text("words for later")
    embedder.fail_with = ConnectionError("embedder down")

    assert await indexer(store, root, embedder).sync_all() == SyncReport(indexed=1, chunks_added=1)

    (pending,) = await store.pending_embeddings()
    assert pending.text == "words for later"
    hits = await store.search([ARIA], text="later words", now=datetime.now(UTC))
    assert [h.item.id for h in hits] == [pending.id]  # found by full text meanwhile


async def test_a_folder_removed_while_nobody_watched_goes_when_named(
    store: SqliteMemoryStore, root: Path, embedder: FakeEmbedder
) -> None:
    (root / "aria" / "a.txt").write_text(WORDS)
    await indexer(store, root, embedder).sync_all()
    (root / "aria" / "a.txt").unlink()
    (root / "aria").rmdir()

    restarted = indexer(store, root, embedder)
    assert await restarted.sync_all() == SyncReport()  # no folder: nothing says aria had one
    assert await restarted.sync_all([ARIA]) == SyncReport(removed=1, chunks_removed=2)
    assert await store.list_items(ARIA) == []
