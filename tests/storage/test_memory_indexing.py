"""The embedding job over the real SQLite stores: what conversations write pending gets its
vector, and a job started after a restart picks up what the last one left."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from personae.core.memory.capture import memories_of
from personae.core.memory.indexing import EmbeddingJob, IndexingSettings
from personae.core.memory.items import EmbeddingSpace, Partition
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.connection import connect
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeEmbedder

EMBEDDER = FakeEmbedder(dimension=24)
SPACE = EmbeddingSpace(EMBEDDER.model_name, EMBEDDER.dimension)


async def test_items_written_with_messages_are_embedded_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path, remember=memories_of) as conversations:
        for text in ["I like green tea.", "My dog is called Rex.", "The harbour was foggy."]:
            opened = await conversations.open_turn(
                external_user_id="alice", character_id="mira", text=text
            )
    mine = Partition.private(opened.user.id, "mira")
    settings = IndexingSettings(batch_size=2)

    async with SqliteMemoryStore(path, space=SPACE) as memory:
        total = len(await memory.list_items(mine))
        assert len(await memory.pending_embeddings(limit=100)) == total == 5  # 3 + 2 facts
        assert await EmbeddingJob(memory, EMBEDDER, settings).run_once() == 2  # then a "crash"

    async with SqliteMemoryStore(path, space=SPACE) as memory:  # the next start
        job = EmbeddingJob(memory, EMBEDDER, settings)
        assert len(await memory.pending_embeddings()) == total - 2
        while await job.run_once():
            pass
        assert await memory.pending_embeddings() == []
        assert {item.embedding_space for item in await memory.list_items(mine)} == {SPACE}
        hits = await memory.search(
            [mine], text="", vector=EMBEDDER.vector("foggy harbour"), now=datetime.now(UTC)
        )
        assert hits[0].item.text == "The harbour was foggy."

    conn = connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM memory_vectors_1").fetchone()[0] == total
    finally:
        conn.close()
