"""``MemoryStore`` on SQLite: FTS5 for full text, sqlite-vec for vectors, one file shared with
the conversation store. The SQL is in ``memory_rows`` so other stores can reuse it inside
their own transactions; this class adds the worker thread, validation and fusion."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from personae.core.memory.items import EmbeddingSpace, MemoryHit, MemoryItem, NewMemory, Partition
from personae.core.memory.recall import DEFAULT_WEIGHTS, RecallWeights, fuse
from personae.core.memory.validate import check_limit, check_search, check_vectors
from personae.core.ports import MemoryStore
from personae.errors import InvalidInput
from personae.storage.sqlite import memory_rows as sql
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text


class SqliteMemoryStore(SqliteResource, MemoryStore):
    def __init__(
        self, database: SqliteDatabase | Path, *, space: EmbeddingSpace | None = None
    ) -> None:
        super().__init__(database)
        self.space = space
        self._vectors: sql.VectorTable | None = None

    async def open(self) -> None:
        await super().open()
        space = self.space

        def prepare(conn: Connection) -> sql.VectorTable | None:
            if space is None:
                return None
            with transaction(conn):
                return sql.vector_table(conn, space)

        try:
            self._vectors = await self._db.run("prepare the memory vector table", prepare)
        except BaseException:
            await self.close()
            raise

    async def add(self, items: Sequence[NewMemory]) -> list[MemoryItem]:
        check_vectors(items, self.space)
        vectors = self._vectors

        def work(conn: Connection) -> list[MemoryItem]:
            with transaction(conn):
                return sql.insert_items(conn, items, vectors)

        return await self._db.run("store memory items", work)

    async def search(
        self,
        partitions: Sequence[Partition],
        *,
        text: str,
        vector: Sequence[float] | None = None,
        limit: int = 5,
        now: datetime,
        exclude_texts: Sequence[str] = (),
        weights: RecallWeights = DEFAULT_WEIGHTS,
    ) -> list[MemoryHit]:
        check_search(self.space, partitions, vector, limit)
        vectors = self._vectors
        wanted = weights.candidates(limit)
        chosen = list(dict.fromkeys(partitions))

        def work(conn: Connection) -> tuple[list[MemoryItem], list[MemoryItem]]:
            # One read transaction: both rankings and the rows see the same snapshot.
            conn.execute("BEGIN")
            try:
                by_text = sql.fulltext_ranking(conn, chosen, text, wanted)
                by_vector = (
                    sql.vector_ranking(conn, vectors, chosen, vector, wanted)
                    if vectors is not None and vector is not None
                    else []
                )
                found = sql.items_by_pk(conn, by_text + by_vector)
            finally:
                conn.execute("COMMIT")
            return [found[pk] for pk in by_text], [found[pk] for pk in by_vector]

        if limit == 0:
            return []
        by_text, by_vector = await self._db.read("search memory", work)
        return fuse(
            by_text, by_vector, now=now, limit=limit, exclude_texts=exclude_texts, weights=weights
        )

    async def get(self, item_ids: Sequence[str]) -> list[MemoryItem]:
        def work(conn: Connection) -> list[MemoryItem]:
            rows = conn.execute(
                f"{sql.ITEM_COLUMNS} WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(item_ids)),),
            ).fetchall()
            return [sql.item_of(row) for row in rows]

        found = {item.id: item for item in await self._db.read("read memory items", work)}
        return [found[item_id] for item_id in dict.fromkeys(item_ids) if item_id in found]

    async def list_items(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)

        def work(conn: Connection) -> list[MemoryItem]:
            rows = conn.execute(
                f"{sql.ITEM_COLUMNS} WHERE user_id = ? AND character_id = ? AND scope = ?"
                " ORDER BY created_at DESC, pk DESC LIMIT ?",
                (partition.user_id, partition.character_id, partition.scope.value, limit),
            ).fetchall()
            return [sql.item_of(row) for row in rows]

        return await self._db.read("list memory items", work)

    async def list_facts(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        """The partition's extracted facts (kinds ``fact:...``), newest first: the profile
        reads them however many messages came since (``core.memory.profile.FactSource``)."""
        check_limit(limit)

        def work(conn: Connection) -> list[MemoryItem]:
            rows = conn.execute(
                sql.FACTS, (partition.user_id, partition.character_id, partition.scope.value, limit)
            ).fetchall()
            return [sql.item_of(row) for row in rows]

        return await self._db.read("list memory facts", work)

    async def pending_embeddings(self, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)
        space = self.space
        if space is None:
            return []

        def work(conn: Connection) -> list[MemoryItem]:
            # Three index ranges (no vector, another model, this model at another dimension)
            # rather than a scan: the job asks often and the answer is usually "none".
            rows = conn.execute(
                f"{sql.ITEM_COLUMNS} WHERE embedding_model IS NULL"
                " OR embedding_model < ? OR embedding_model > ?"
                " OR (embedding_model = ? AND embedding_dimension <> ?)"
                " ORDER BY pk LIMIT ?",
                (space.model_name, space.model_name, space.model_name, space.dimension, limit),
            ).fetchall()
            return [sql.item_of(row) for row in rows]

        return await self._db.read("list items to embed", work)

    async def set_embeddings(self, vectors: Mapping[str, Sequence[float]]) -> int:
        table = self._vectors
        if table is None or self.space is None:
            raise InvalidInput("this memory store has no embedder, so it takes no vectors")
        checked = {item_id: tuple(vector) for item_id, vector in vectors.items()}
        for vector in checked.values():
            self.space.check(vector)

        def work(conn: Connection) -> int:
            with transaction(conn):
                return sum(sql.set_vector(conn, table, i, v) for i, v in checked.items())

        return await self._db.run("store memory vectors", work)

    async def delete(self, partition: Partition, item_ids: Sequence[str] | None = None) -> int:
        where = "user_id = ? AND character_id = ? AND scope = ?"
        params: tuple[object, ...] = (
            partition.user_id,
            partition.character_id,
            partition.scope.value,
        )
        if item_ids is not None:
            where += " AND id IN (SELECT value FROM json_each(?))"
            params += (json.dumps(list(item_ids)),)
        return await self._delete_where("delete memory items", where, params)

    async def delete_user(self, user_id: str) -> int:
        if not user_id:
            raise InvalidInput("name the user whose memory to delete")
        return await self._delete_where("delete a user's memory", "user_id = ?", (user_id,))

    async def purge_before(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise InvalidInput("the purge date must be timezone-aware")
        return await self._delete_where(
            "purge old memory items", "scope = 'private' AND created_at < ?", (as_text(moment),)
        )

    async def _delete_where(self, what: str, where: str, params: tuple[object, ...]) -> int:
        def work(conn: Connection) -> int:
            with transaction(conn):
                rows = conn.execute(f"SELECT pk FROM memory_items WHERE {where}", params)
                return sql.delete_pks(conn, [int(row[0]) for row in rows.fetchall()])

        return await self._db.run(what, work)
