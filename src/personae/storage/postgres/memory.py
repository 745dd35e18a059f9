"""``MemoryStore`` on PostgreSQL: a generated ``tsvector`` under GIN for full text, pgvector
(HNSW, cosine) for vectors, in the database the conversation store uses. The SQL is in
``memory_rows`` so the conversation store can reuse it inside its own transactions; this
class adds validation and the same fusion of both rankings as the SQLite store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from personae.core.memory.items import EmbeddingSpace, MemoryHit, MemoryItem, NewMemory, Partition
from personae.core.memory.recall import DEFAULT_WEIGHTS, RecallWeights, fuse
from personae.core.memory.validate import check_limit, check_search, check_vectors
from personae.core.ports import MemoryStore
from personae.errors import InvalidInput
from personae.storage.postgres import memory_rows as sql
from personae.storage.postgres.database import Conn, PostgresDatabase
from personae.storage.postgres.resource import PostgresResource

_PARTITION = "user_id = %(user)s AND character_id = %(character)s AND scope = %(scope)s"


class PostgresMemoryStore(PostgresResource, MemoryStore):
    def __init__(
        self, database: PostgresDatabase | str, *, space: EmbeddingSpace | None = None
    ) -> None:
        super().__init__(database)
        self.space = space
        self._vectors: sql.VectorTable | None = None

    async def open(self) -> None:
        await super().open()
        space = self.space
        if space is None:
            return

        async def prepare(conn: Conn) -> sql.VectorTable | None:
            return await sql.vector_table(conn, space)

        try:
            self._vectors = await self._db.run("prepare the memory vector table", prepare)
        except BaseException:
            await self.close()
            raise

    async def add(self, items: Sequence[NewMemory]) -> list[MemoryItem]:
        check_vectors(items, self.space)
        vectors = self._vectors
        return await self._db.run(
            "store memory items", lambda conn: sql.insert_items(conn, items, vectors)
        )

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

        async def work(conn: Conn) -> tuple[list[MemoryItem], list[MemoryItem]]:
            # Each ranking returns whole rows, so an item deleted between the two statements
            # cannot leave a ranking pointing at nothing.
            by_text = await sql.fulltext_ranking(conn, chosen, text, wanted)
            by_vector = (
                await sql.vector_ranking(conn, vectors, chosen, vector, wanted)
                if vectors is not None and vector is not None
                else []
            )
            return by_text, by_vector

        if limit == 0:
            return []
        by_text, by_vector = await self._db.run("search memory", work)
        return fuse(
            by_text, by_vector, now=now, limit=limit, exclude_texts=exclude_texts, weights=weights
        )

    async def get(self, item_ids: Sequence[str]) -> list[MemoryItem]:
        found = {
            item.id: item
            for item in await self._items(
                "read memory items", "id = ANY(%(ids)s)", {"ids": list(item_ids)}
            )
        }
        return [found[item_id] for item_id in dict.fromkeys(item_ids) if item_id in found]

    async def list_items(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)
        return await self._items(
            "list memory items",
            f"{_PARTITION} ORDER BY created_at DESC, pk DESC LIMIT %(limit)s",
            _partition(partition) | {"limit": limit},
        )

    async def list_facts(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        """The partition's extracted facts (kinds ``fact:...``), newest first: the profile
        reads them however many messages came since (``core.memory.profile.FactSource``)."""
        check_limit(limit)
        return await self._items(
            "list memory facts",
            f"{_PARTITION} AND starts_with(kind, 'fact:')"
            " ORDER BY created_at DESC, pk DESC LIMIT %(limit)s",
            _partition(partition) | {"limit": limit},
        )

    async def pending_embeddings(self, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)
        space = self.space
        if space is None:
            return []
        return await self._items(
            "list items to embed",
            "embedding_model IS NULL OR embedding_model <> %(model)s"
            " OR embedding_dimension <> %(dimension)s ORDER BY pk LIMIT %(limit)s",
            {"model": space.model_name, "dimension": space.dimension, "limit": limit},
        )

    async def set_embeddings(self, vectors: Mapping[str, Sequence[float]]) -> int:
        table = self._vectors
        if table is None or self.space is None:
            raise InvalidInput("this memory store has no embedder, so it takes no vectors")
        checked = {item_id: tuple(vector) for item_id, vector in vectors.items()}
        for vector in checked.values():
            self.space.check(vector)

        async def work(conn: Conn) -> int:
            # In id order: two nodes embedding overlapping batches lock rows in one order.
            done = 0
            for item_id in sorted(checked):
                done += await sql.set_vector(conn, table, item_id, checked[item_id])
            return done

        return await self._db.run("store memory vectors", work)

    async def delete(self, partition: Partition, item_ids: Sequence[str] | None = None) -> int:
        where, params = _PARTITION, _partition(partition)
        if item_ids is not None:
            where += " AND id = ANY(%(ids)s)"
            params["ids"] = list(item_ids)
        return await self._db.run(
            "delete memory items", lambda conn: sql.delete_where(conn, where, params)
        )

    async def delete_user(self, user_id: str) -> int:
        if not user_id:
            raise InvalidInput("name the user whose memory to delete")
        return await self._db.run(
            "delete a user's memory",
            lambda conn: sql.delete_where(conn, "user_id = %(user)s", {"user": user_id}),
        )

    async def purge_before(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise InvalidInput("the purge date must be timezone-aware")
        return await self._db.run(
            "purge old memory items",
            lambda conn: sql.delete_where(
                conn, "scope = 'private' AND created_at < %(moment)s", {"moment": moment}
            ),
        )

    async def _items(self, what: str, where: str, params: dict[str, object]) -> list[MemoryItem]:
        async def work(conn: Conn) -> list[MemoryItem]:
            cursor = await conn.execute(f"{sql.ITEM_COLUMNS} WHERE {where}", params)
            return [sql.item_of(row) for row in await cursor.fetchall()]

        return await self._db.read(what, work)


def _partition(partition: Partition) -> dict[str, object]:
    return {
        "user": partition.user_id,
        "character": partition.character_id,
        "scope": partition.scope.value,
    }
