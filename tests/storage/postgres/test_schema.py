"""What the PostgreSQL schema does differently from SQLite's, checked in the catalog: a
generated tsvector under GIN for full text, a vector(N) column under HNSW (cosine) per
embedding space, and constraints that keep seqs and idempotency keys unique."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.storage.postgres import (
    PostgresConversationStore,
    PostgresDatabase,
    PostgresMemoryStore,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def indexes(url: str, table: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
        ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


async def test_vectors_have_the_space_dimension_and_an_hnsw_cosine_index(pg_url: str) -> None:
    database = PostgresDatabase(pg_url)
    async with (
        PostgresConversationStore(database),
        PostgresMemoryStore(database, space=EmbeddingSpace("minilm", 384)),
    ):
        pass
    with psycopg.connect(pg_url) as conn:
        (space_id,) = conn.execute(
            "SELECT id FROM memory_vector_spaces WHERE model_name = 'minilm'"
        ).fetchone() or (None,)
        column_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = 'embedding'",
            (f"memory_vectors_{space_id}",),
        ).fetchone()
    assert column_type == ("vector(384)",)
    definitions = indexes(pg_url, f"memory_vectors_{space_id}").values()
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions)


async def test_full_text_is_a_generated_tsvector_under_gin(pg_url: str) -> None:
    async with PostgresMemoryStore(pg_url):
        pass
    with psycopg.connect(pg_url) as conn:
        generated = conn.execute(
            "SELECT generation_expression FROM information_schema.columns"
            " WHERE table_name = 'memory_items' AND column_name = 'search'"
        ).fetchone()
    assert generated is not None
    assert "to_tsvector" in str(generated[0])
    assert any("USING gin (search)" in d for d in indexes(pg_url, "memory_items").values())


async def test_seqs_and_idempotency_keys_are_unique_by_constraint(pg_url: str) -> None:
    async with PostgresConversationStore(pg_url):
        pass
    messages = indexes(pg_url, "messages").values()
    keys = indexes(pg_url, "idempotency_keys").values()
    assert any("UNIQUE" in d and "(conversation_id, seq)" in d for d in messages)
    assert any("UNIQUE" in d and "(user_id, key)" in d for d in keys)


async def test_vectors_too_large_for_hnsw_are_kept_and_searched_exactly(pg_url: str) -> None:
    space = EmbeddingSpace("large", 3072)  # over pgvector's 2000-dimension HNSW limit
    partition = Partition.private("u", "mira")
    near = [1.0] + [0.0] * 3071
    far = [0.0] * 3071 + [1.0]
    async with PostgresMemoryStore(pg_url, space=space) as store:
        await store.add(
            [
                NewMemory(partition, "the near one", NOW, embedding=tuple(near)),
                NewMemory(partition, "the far one", NOW, embedding=tuple(far)),
            ]
        )
        hits = await store.search([partition], text="?", vector=near, now=NOW, limit=1)
    assert [hit.item.text for hit in hits] == ["the near one"]
    with psycopg.connect(pg_url) as conn:
        hnsw = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
        assert hnsw.fetchone() == (0,)
