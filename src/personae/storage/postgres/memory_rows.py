"""The SQL of long-term memory on PostgreSQL, as functions over an open connection, so the
conversation store can store a message's memory items inside its own transaction.

``memory_items`` is the truth and carries its own full-text index (a generated ``tsvector``
column under GIN). Each embedding space has a table ``memory_vectors_<id>`` (``item_pk``
referencing the item, ON DELETE CASCADE, the partition token, a ``vector(<dimension>)``
under an HNSW index with ``vector_cosine_ops``), so deleting an item is one DELETE.
Writers expect to run inside a transaction (``PostgresDatabase.run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgvector import Vector
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from personae.core.memory.items import EmbeddingSpace, MemoryItem, NewMemory, Partition, Scope
from personae.core.memory.terms import query_terms, words
from personae.core.memory.validate import check_vectors
from personae.storage.sqlite.memory_rows import partition_token
from personae.storage.sqlite.rows import new_id

Conn = AsyncConnection[DictRow]

#: Candidates the HNSW graph walk keeps (pgvector's default is 40): a partition filter is
#: applied after the walk, so a wider walk keeps small partitions from coming back short.
HNSW_EF_SEARCH = 200

#: pgvector's HNSW indexes ``vector`` columns of at most this many dimensions.
HNSW_MAX_DIMENSIONS = 2000

ITEM_FIELDS = (
    "pk, id, scope, user_id, character_id, text, kind, importance, created_at,"
    " source_message_ids, embedding_model, embedding_dimension"
)
ITEM_COLUMNS = f"SELECT {ITEM_FIELDS} FROM memory_items"

# The partitions a query names, as three parallel arrays.
_IN_PARTITIONS = (
    "(scope, user_id, character_id) IN"
    " (SELECT * FROM unnest(%(scopes)s::text[], %(users)s::text[], %(characters)s::text[]))"
)


@dataclass(frozen=True, slots=True)
class VectorTable:
    space: EmbeddingSpace
    name: str

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.name)


async def vector_table(
    conn: Conn, space: EmbeddingSpace, *, create: bool = True
) -> VectorTable | None:
    """The vector table of ``space``, created with its HNSW index the first time (under an
    advisory lock: two nodes opening at once make it once). Call inside a transaction."""
    row = await _space_row(conn, space)
    if row is None and create:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('personae.memory_vectors'))")
        await conn.execute(
            "INSERT INTO memory_vector_spaces (model_name, dimension, created_at)"
            " VALUES (%s, %s, now()) ON CONFLICT (model_name, dimension) DO NOTHING",
            (space.model_name, space.dimension),
        )
        row = await _space_row(conn, space)
        assert row is not None  # inserted just now, or by the node that held the lock
        table = VectorTable(space, f"memory_vectors_{row['id']}")
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {table} ("
                " item_pk bigint PRIMARY KEY REFERENCES memory_items (pk) ON DELETE CASCADE,"
                " part text NOT NULL, embedding vector({dimension}) NOT NULL)"
            ).format(table=table.ident, dimension=sql.Literal(space.dimension))
        )
        if space.dimension <= HNSW_MAX_DIMENSIONS:  # larger vectors are searched exactly
            await conn.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {index} ON {table}"
                    " USING hnsw (embedding vector_cosine_ops)"
                ).format(index=sql.Identifier(f"{table.name}_hnsw"), table=table.ident)
            )
        await conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (part)").format(
                index=sql.Identifier(f"{table.name}_part"), table=table.ident
            )
        )
        return table
    return None if row is None else VectorTable(space, f"memory_vectors_{row['id']}")


async def _space_row(conn: Conn, space: EmbeddingSpace) -> DictRow | None:
    cursor = await conn.execute(
        "SELECT id FROM memory_vector_spaces WHERE model_name = %s AND dimension = %s",
        (space.model_name, space.dimension),
    )
    return await cursor.fetchone()


async def insert_items(
    conn: Conn, items: Sequence[NewMemory], vectors: VectorTable | None
) -> list[MemoryItem]:
    """Insert ``items`` and, when given, their vectors. Items without a vector are pending
    (``embedding_model`` NULL). Call inside a transaction."""
    check_vectors(items, vectors.space if vectors else None)
    stored: list[MemoryItem] = []
    for item in items:
        embedded = vectors.space if vectors and item.embedding is not None else None
        item_id = new_id("mem")
        part = item.partition
        cursor = await conn.execute(
            "INSERT INTO memory_items (id, scope, user_id, character_id, text, search_text, kind,"
            " importance, created_at, source_message_ids, embedding_model, embedding_dimension)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING pk",
            (
                item_id,
                part.scope.value,
                part.user_id,
                part.character_id,
                item.text,
                " ".join(words(item.text)),
                item.kind,
                item.importance,
                item.created_at,
                list(item.source_message_ids),
                embedded.model_name if embedded else None,
                embedded.dimension if embedded else None,
            ),
        )
        row = await cursor.fetchone()
        assert row is not None
        if vectors is not None and item.embedding is not None:
            await _upsert_vector(conn, vectors, int(row["pk"]), part, item.embedding)
        stored.append(
            MemoryItem(
                item_id,
                part,
                item.text,
                item.kind,
                item.importance,
                item.created_at,
                item.source_message_ids,
                embedded,
            )
        )
    return stored


async def set_vector(
    conn: Conn, vectors: VectorTable, item_id: str, vector: Sequence[float]
) -> bool:
    """Give an item its vector in ``vectors``' space (moving it out of the space it was in);
    False if the item does not exist. Call inside a transaction."""
    cursor = await conn.execute(
        "SELECT pk, scope, user_id, character_id, embedding_model, embedding_dimension"
        " FROM memory_items WHERE id = %s FOR UPDATE",
        (item_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return False
    pk = int(row["pk"])
    model, dimension = row["embedding_model"], row["embedding_dimension"]
    if model is not None and (model, dimension) != (
        vectors.space.model_name,
        vectors.space.dimension,
    ):
        old = await vector_table(conn, EmbeddingSpace(model, dimension), create=False)
        if old is not None:
            await conn.execute(
                sql.SQL("DELETE FROM {table} WHERE item_pk = %s").format(table=old.ident), (pk,)
            )
    partition = Partition(Scope(row["scope"]), row["user_id"], row["character_id"])
    await _upsert_vector(conn, vectors, pk, partition, tuple(vector))
    await conn.execute(
        "UPDATE memory_items SET embedding_model = %s, embedding_dimension = %s WHERE pk = %s",
        (vectors.space.model_name, vectors.space.dimension, pk),
    )
    return True


async def _upsert_vector(
    conn: Conn, vectors: VectorTable, pk: int, partition: Partition, vector: tuple[float, ...]
) -> None:
    await conn.execute(
        sql.SQL(
            "INSERT INTO {table} (item_pk, part, embedding) VALUES (%s, %s, %s)"
            " ON CONFLICT (item_pk) DO UPDATE SET embedding = excluded.embedding"
        ).format(table=vectors.ident),
        (pk, partition_token(partition), Vector(list(vector))),
    )


async def delete_where(conn: Conn, where: str, params: dict[str, Any]) -> int:
    """Delete the items matching ``where``; their vectors go with them (cascade)."""
    cursor = await conn.execute(f"DELETE FROM memory_items WHERE {where}", params)
    return cursor.rowcount


async def delete_sources(
    conn: Conn, partition: Partition, message_ids: Sequence[str], since: datetime
) -> int:
    """Delete the partition's items made from any of ``message_ids`` (a discarded turn's
    message takes its memory with it); ``since`` keeps the scan to the newest items."""
    return await delete_where(
        conn,
        "user_id = %(user)s AND character_id = %(character)s AND scope = %(scope)s"
        " AND created_at >= %(since)s AND source_message_ids && %(ids)s::text[]",
        {
            "user": partition.user_id,
            "character": partition.character_id,
            "scope": partition.scope.value,
            "since": since,
            "ids": list(message_ids),
        },
    )


def partition_params(partitions: Sequence[Partition]) -> dict[str, list[str]]:
    return {
        "scopes": [p.scope.value for p in partitions],
        "users": [p.user_id for p in partitions],
        "characters": [p.character_id for p in partitions],
    }


async def fulltext_ranking(
    conn: Conn, partitions: Sequence[Partition], text: str, limit: int
) -> list[MemoryItem]:
    """Items of ``partitions`` matching any search word of ``text``, best first
    (``ts_rank_cd`` over the generated ``tsvector``, normalised by document length)."""
    terms = query_terms(text)
    if not terms or limit <= 0:
        return []
    # Terms are letters and digits only, so they need no quoting inside a tsquery.
    query = " | ".join(terms)
    cursor = await conn.execute(
        f"{ITEM_COLUMNS}, to_tsquery('english', %(query)s) AS q"
        f" WHERE search @@ q AND {_IN_PARTITIONS}"
        " ORDER BY ts_rank_cd(search, q, 1) DESC, pk LIMIT %(limit)s",
        {"query": query, "limit": limit, **partition_params(partitions)},
    )
    return [item_of(row) for row in await cursor.fetchall()]


async def vector_ranking(
    conn: Conn,
    vectors: VectorTable,
    partitions: Sequence[Partition],
    vector: Sequence[float],
    limit: int,
) -> list[MemoryItem]:
    """Items of ``partitions`` nearest ``vector`` (cosine distance), nearest first. Call
    inside a transaction (the HNSW search width is set for it alone)."""
    if limit <= 0:
        return []
    await conn.execute(
        sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
            sql.Literal(max(HNSW_EF_SEARCH, min(limit, 1000)))
        )
    )
    cursor = await conn.execute(
        sql.SQL(
            "SELECT i.pk, i.id, i.scope, i.user_id, i.character_id, i.text, i.kind,"
            " i.importance, i.created_at, i.source_message_ids, i.embedding_model,"
            " i.embedding_dimension FROM {table} v JOIN memory_items i ON i.pk = v.item_pk"
            " WHERE v.part = ANY(%(parts)s) ORDER BY v.embedding <=> %(vector)s LIMIT %(limit)s"
        ).format(table=vectors.ident),
        {
            "parts": [partition_token(p) for p in partitions],
            "vector": Vector(list(vector)),
            "limit": limit,
        },
    )
    return [item_of(row) for row in await cursor.fetchall()]


def item_of(row: DictRow) -> MemoryItem:
    model, dimension = row["embedding_model"], row["embedding_dimension"]
    return MemoryItem(
        id=row["id"],
        partition=Partition(Scope(row["scope"]), row["user_id"], row["character_id"]),
        text=row["text"],
        kind=row["kind"],
        importance=float(row["importance"]),
        created_at=row["created_at"],
        source_message_ids=tuple(row["source_message_ids"]),
        embedding_space=EmbeddingSpace(model, int(dimension)) if model is not None else None,
    )
