"""``MemoryStore`` in a dict: the reference semantics of the contract suite, and a store for
tests and throwaway runs. Full text is plain BM25 (``core.memory.fulltext``), vectors are
compared by cosine similarity exhaustively; nothing survives the process."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from personae.core.memory.fulltext import bm25_rank
from personae.core.memory.items import (
    EmbeddingSpace,
    MemoryHit,
    MemoryItem,
    NewMemory,
    Partition,
    Scope,
)
from personae.core.memory.recall import DEFAULT_WEIGHTS, RecallWeights, fuse
from personae.core.memory.validate import check_limit, check_search, check_vectors
from personae.core.ports import MemoryStore
from personae.errors import InvalidInput


class InMemoryMemoryStore(MemoryStore):
    def __init__(self, *, space: EmbeddingSpace | None = None) -> None:
        self.space = space
        # Insertion order is pk order: "oldest first" for pending_embeddings.
        self._items: dict[str, MemoryItem] = {}
        self._vectors: dict[str, tuple[float, ...]] = {}
        self._ids = itertools.count(1)

    async def add(self, items: Sequence[NewMemory]) -> list[MemoryItem]:
        check_vectors(items, self.space)
        stored = []
        for new in items:
            embedded = self.space if new.embedding is not None else None
            item = MemoryItem(
                f"mem_{next(self._ids)}",
                new.partition,
                new.text,
                new.kind,
                new.importance,
                new.created_at,
                new.source_message_ids,
                embedded,
            )
            stored.append(item)
        for item, new in zip(stored, items, strict=True):
            self._items[item.id] = item
            if new.embedding is not None:
                self._vectors[item.id] = new.embedding
        return stored

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
        wanted = weights.candidates(limit)
        chosen = set(partitions)
        pool = [item for item in self._items.values() if item.partition in chosen]
        by_text = [pool[i] for i in bm25_rank(text, [item.text for item in pool])][:wanted]
        by_vector: list[MemoryItem] = []
        if vector is not None:
            embedded = [item for item in pool if item.embedding_space == self.space]
            embedded.sort(key=lambda item: -_cosine(vector, self._vectors[item.id]))
            by_vector = embedded[:wanted]
        return fuse(
            by_text, by_vector, now=now, limit=limit, exclude_texts=exclude_texts, weights=weights
        )

    async def get(self, item_ids: Sequence[str]) -> list[MemoryItem]:
        return [self._items[i] for i in dict.fromkeys(item_ids) if i in self._items]

    async def list_items(self, partition: Partition, *, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)
        mine = [item for item in self._items.values() if item.partition == partition]
        return list(reversed(mine))[:limit] if mine else []

    async def pending_embeddings(self, limit: int = 100) -> list[MemoryItem]:
        check_limit(limit)
        if self.space is None:
            return []
        waiting = (item for item in self._items.values() if item.embedding_space != self.space)
        return list(itertools.islice(waiting, limit))

    async def set_embeddings(self, vectors: Mapping[str, Sequence[float]]) -> int:
        space = self.space
        if space is None:
            raise InvalidInput("this memory store has no embedder, so it takes no vectors")
        checked = {item_id: tuple(vector) for item_id, vector in vectors.items()}
        for vector in checked.values():
            space.check(vector)
        updated = 0
        for item_id, vector in checked.items():
            item = self._items.get(item_id)
            if item is not None:
                self._items[item_id] = replace(item, embedding_space=space)
                self._vectors[item_id] = vector
                updated += 1
        return updated

    async def delete(self, partition: Partition, item_ids: Sequence[str] | None = None) -> int:
        wanted = None if item_ids is None else set(item_ids)
        return self._drop(
            lambda item: item.partition == partition and (wanted is None or item.id in wanted)
        )

    async def delete_user(self, user_id: str) -> int:
        if not user_id:
            raise InvalidInput("name the user whose memory to delete")
        return self._drop(lambda item: item.partition.user_id == user_id)

    async def purge_before(self, moment: datetime) -> int:
        if moment.tzinfo is None:
            raise InvalidInput("the purge date must be timezone-aware")
        return self._drop(
            lambda item: item.partition.scope is Scope.PRIVATE and item.created_at < moment
        )

    def _drop(self, doomed: Callable[[MemoryItem], bool]) -> int:
        gone = [item_id for item_id, item in self._items.items() if doomed(item)]
        for item_id in gone:
            del self._items[item_id]
            self._vectors.pop(item_id, None)
        return len(gone)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
