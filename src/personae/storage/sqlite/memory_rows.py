"""The SQL of long-term memory, as plain functions over an open connection, so that another
store sharing the connection (the conversation store, writing a message and its memory item
in one transaction) can call them inside its own transaction.

Three structures move together: ``memory_items`` (the truth), ``memory_fts`` (contentless
FTS5, rowid = item ``pk``) and, per embedding space, a vec0 table ``memory_vectors_<id>``
(``item_pk``, the partition token as partition key, the vector). Every writer here expects to
run inside a transaction (``connection.transaction``).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from personae.core.memory.items import EmbeddingSpace, MemoryItem, NewMemory, Partition, Scope
from personae.core.memory.terms import query_terms
from personae.core.memory.validate import check_vectors
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.rows import as_text, new_id, now

#: Vectors per vec0 chunk. Every partition takes at least one chunk (chunk_size x dimension x
#: 4 bytes: 192 KiB at 384 dimensions), so this is small; a KNN scans whole chunks.
VEC_CHUNK_SIZE = 128

ITEM_COLUMNS = (
    "SELECT pk, id, scope, user_id, character_id, text, kind, importance, created_at,"
    " source_message_ids, embedding_model, embedding_dimension FROM memory_items"
)
#: A partition's facts, newest first (every turn with memory on): the bounds on ``kind`` are
#: those of the ``memory_items_facts`` partial index, written alike so that SQLite uses it.
FACTS = (
    f"{ITEM_COLUMNS} WHERE user_id = ? AND character_id = ? AND scope = ?"
    " AND kind >= 'fact:' AND kind < 'fact;' ORDER BY created_at DESC, pk DESC LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class VectorTable:
    space: EmbeddingSpace
    name: str


def partition_token(partition: Partition) -> str:
    """A single FTS5 word (and vec0 partition key) naming the partition."""
    digest = hashlib.blake2b(partition.key.encode(), digest_size=12).hexdigest()
    return f"p{digest}"


def vector_table(conn: Connection, space: EmbeddingSpace) -> VectorTable:
    """The vec0 table of ``space``, created (with its row in ``memory_vector_spaces``) the
    first time. Call inside a transaction."""
    row = conn.execute(
        "SELECT id FROM memory_vector_spaces WHERE model_name = ? AND dimension = ?",
        (space.model_name, space.dimension),
    ).fetchone()
    if row is None:
        cursor = conn.execute(
            "INSERT INTO memory_vector_spaces (model_name, dimension, created_at) VALUES (?, ?, ?)",
            (space.model_name, space.dimension, as_text(now())),
        )
        space_id = int(cursor.lastrowid)
        conn.execute(
            f"CREATE VIRTUAL TABLE memory_vectors_{space_id} USING vec0("
            " item_pk INTEGER PRIMARY KEY, part TEXT PARTITION KEY,"
            f" embedding float[{space.dimension}] distance_metric=cosine,"
            f" chunk_size={VEC_CHUNK_SIZE})"
        )
    else:
        space_id = int(row[0])
    return VectorTable(space, f"memory_vectors_{space_id}")


def all_vector_tables(conn: Connection) -> list[VectorTable]:
    rows = conn.execute("SELECT id, model_name, dimension FROM memory_vector_spaces").fetchall()
    return [VectorTable(EmbeddingSpace(r[1], r[2]), f"memory_vectors_{r[0]}") for r in rows]


def insert_items(
    conn: Connection, items: Sequence[NewMemory], vectors: VectorTable | None
) -> list[MemoryItem]:
    """Insert ``items`` with their full-text rows and, when given, their vectors. Items
    without a vector are pending (``embedding_model`` NULL). Call inside a transaction."""
    check_vectors(items, vectors.space if vectors else None)
    stored: list[MemoryItem] = []
    for item in items:
        embedded = vectors.space if vectors and item.embedding is not None else None
        item_id = new_id("mem")
        part = item.partition
        cursor = conn.execute(
            "INSERT INTO memory_items (id, scope, user_id, character_id, text, kind, importance,"
            " created_at, source_message_ids, embedding_model, embedding_dimension)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item_id,
                part.scope.value,
                part.user_id,
                part.character_id,
                item.text,
                item.kind,
                item.importance,
                as_text(item.created_at),
                json.dumps(list(item.source_message_ids)),
                embedded.model_name if embedded else None,
                embedded.dimension if embedded else None,
            ),
        )
        pk = int(cursor.lastrowid)
        token = partition_token(part)
        conn.execute(
            "INSERT INTO memory_fts (rowid, text, part) VALUES (?, ?, ?)", (pk, item.text, token)
        )
        if vectors is not None and item.embedding is not None:
            _insert_vector(conn, vectors, pk, token, item.embedding)
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


def set_vector(
    conn: Connection, vectors: VectorTable, item_id: str, vector: Sequence[float]
) -> bool:
    """Give an item its vector in ``vectors``' space (moving it out of the space it was in);
    False if the item does not exist. Call inside a transaction."""
    row = conn.execute(
        "SELECT pk, scope, user_id, character_id, embedding_model, embedding_dimension"
        " FROM memory_items WHERE id = ?",
        (item_id,),
    ).fetchone()
    if row is None:
        return False
    pk = int(row[0])
    if row[4] is not None:
        old = vector_table(conn, EmbeddingSpace(row[4], row[5]))
        conn.execute(f"DELETE FROM {old.name} WHERE item_pk = ?", (pk,))
    token = partition_token(Partition(Scope(row[1]), row[2], row[3]))
    _insert_vector(conn, vectors, pk, token, tuple(vector))
    conn.execute(
        "UPDATE memory_items SET embedding_model = ?, embedding_dimension = ? WHERE pk = ?",
        (vectors.space.model_name, vectors.space.dimension, pk),
    )
    return True


def _insert_vector(
    conn: Connection, vectors: VectorTable, pk: int, token: str, vector: tuple[float, ...]
) -> None:
    conn.execute(
        f"INSERT INTO {vectors.name} (item_pk, part, embedding) VALUES (?, ?, ?)",
        (pk, token, pack(vector)),
    )


def pack(vector: Sequence[float]) -> bytes:
    """float32, little-endian: sqlite-vec's binary vector format."""
    return struct.pack(f"<{len(vector)}f", *vector)


def delete_pks(conn: Connection, pks: Sequence[int]) -> int:
    """Delete items by ``pk`` from the items, full-text and every vector table."""
    if not pks:
        return 0
    rows = [(pk,) for pk in pks]
    conn.executemany("DELETE FROM memory_fts WHERE rowid = ?", rows)
    for table in all_vector_tables(conn):
        conn.executemany(f"DELETE FROM {table.name} WHERE item_pk = ?", rows)
    conn.executemany("DELETE FROM memory_items WHERE pk = ?", rows)
    return len(pks)


def delete_sources(
    conn: Connection, partition: Partition, message_ids: Sequence[str], since: datetime
) -> int:
    """Delete the partition's items made from any of ``message_ids`` (a discarded turn's
    message takes its memory with it); ``since`` (the oldest message's time) keeps the scan
    to the newest items. Call inside a transaction."""
    rows = conn.execute(
        "SELECT pk FROM memory_items WHERE user_id = ? AND character_id = ? AND scope = ?"
        " AND created_at >= ? AND EXISTS (SELECT 1 FROM json_each(source_message_ids) AS s"
        " WHERE s.value IN (SELECT value FROM json_each(?)))",
        (
            partition.user_id,
            partition.character_id,
            partition.scope.value,
            as_text(since),
            json.dumps(list(message_ids)),
        ),
    ).fetchall()
    return delete_pks(conn, [int(row[0]) for row in rows])


def fulltext_ranking(
    conn: Connection, partitions: Sequence[Partition], text: str, limit: int
) -> list[int]:
    """Item pks of ``partitions`` matching any search word of ``text``, best BM25 first."""
    terms = query_terms(text)
    if not terms or limit <= 0:
        return []
    parts = " OR ".join(f'"{partition_token(p)}"' for p in partitions)
    words = " OR ".join(f'"{term}"' for term in terms)  # terms hold no quotes: letters/digits
    query = f"part : ({parts}) AND text : ({words})"
    rows = conn.execute(
        "SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rank LIMIT ?",
        (query, limit),
    ).fetchall()
    return [int(row[0]) for row in rows]


def vector_ranking(
    conn: Connection,
    vectors: VectorTable,
    partitions: Sequence[Partition],
    vector: Sequence[float],
    limit: int,
) -> list[int]:
    """Item pks of ``partitions`` nearest ``vector`` (cosine), nearest first. One KNN per
    partition (vec0 partition keys take ``=`` only), merged by distance."""
    if limit <= 0:
        return []
    blob = pack(vector)
    found: list[tuple[float, int]] = []
    for partition in partitions:
        rows = conn.execute(
            f"SELECT item_pk, distance FROM {vectors.name}"
            " WHERE embedding MATCH ? AND part = ? AND k = ?",
            (blob, partition_token(partition), limit),
        ).fetchall()
        found.extend((float(row[1]), int(row[0])) for row in rows)
    found.sort()
    return [pk for _, pk in found[:limit]]


def items_by_pk(conn: Connection, pks: Iterable[int]) -> dict[int, MemoryItem]:
    wanted = json.dumps(sorted(set(pks)))
    rows = conn.execute(
        f"{ITEM_COLUMNS} WHERE pk IN (SELECT value FROM json_each(?))", (wanted,)
    ).fetchall()
    return {int(row[0]): item_of(row) for row in rows}


def item_of(row: Any) -> MemoryItem:
    model, dimension = row[10], row[11]
    return MemoryItem(
        id=row[1],
        partition=Partition(Scope(row[2]), row[3], row[4]),
        text=row[5],
        kind=row[6],
        importance=float(row[7]),
        created_at=datetime.fromisoformat(row[8]),
        source_message_ids=tuple(json.loads(row[9])),
        embedding_space=EmbeddingSpace(model, int(dimension)) if model is not None else None,
    )
