"""Migrations on PostgreSQL: applied once, in one transaction under an advisory lock, even
when several nodes open the database at the same moment."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from personae.core.memory.items import EmbeddingSpace
from personae.errors import StorageError
from personae.storage.postgres import PostgresDatabase, PostgresMemoryStore
from personae.storage.postgres.migrations import load_migrations


def applied(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [
            (int(v), str(n))
            for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        ]


async def test_concurrent_openers_migrate_once(pg_url: str) -> None:
    nodes = [PostgresDatabase(pg_url) for _ in range(4)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        expected = [(m.version, m.name) for m in load_migrations()]
        assert applied(pg_url) == expected  # each once, none missing
    finally:
        await asyncio.gather(*(node.close() for node in nodes))
    async with PostgresDatabase(pg_url):  # opening again applies nothing and fails nothing
        assert applied(pg_url) == expected


async def test_concurrent_memory_stores_make_one_vector_table(pg_url: str) -> None:
    space = EmbeddingSpace("fake", 16)
    stores = [PostgresMemoryStore(pg_url, space=space) for _ in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    await asyncio.gather(*(store.close() for store in stores))
    with psycopg.connect(pg_url) as conn:
        spaces = conn.execute("SELECT model_name, dimension FROM memory_vector_spaces").fetchall()
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'memory_vectors_%'"
        ).fetchall()
    assert spaces == [("fake", 16)]
    assert len(tables) == 1


async def test_a_schema_newer_than_the_code_is_refused(pg_url: str) -> None:
    async with PostgresDatabase(pg_url):
        pass
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(StorageError, match="newer than this version of Personae"):
        await PostgresDatabase(pg_url).open()
