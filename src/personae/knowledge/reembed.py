"""Embedding stored items again (``personae memory reindex``): every item still pending in
the store's space (after a change of embedder model, that is all of them), or every item of
one partition whatever its vector."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from personae.core.memory.items import MemoryItem, Partition
from personae.core.ports import Embedder, MemoryStore
from personae.errors import InvalidInput

#: Called after each batch with (items embedded so far, items to embed or None if unknown).
Progress = Callable[[int, int | None], None]

MAX_PARTITION_ITEMS = 1_000_000


async def embed_pending(
    store: MemoryStore, embedder: Embedder, *, batch_size: int, progress: Progress
) -> int:
    """Embed pending items batch by batch until none is left; how many were embedded. Stops
    (rather than looping) if a batch updates nothing, which only a concurrent delete causes."""
    _check(store, batch_size)
    done = 0
    while batch := await store.pending_embeddings(batch_size):
        updated = await _embed(store, embedder, batch)
        if updated == 0:
            break
        done += updated
        progress(done, None)
    return done


async def reembed_partition(
    store: MemoryStore,
    embedder: Embedder,
    partition: Partition,
    *,
    batch_size: int,
    progress: Progress,
) -> int:
    """Embed every item of ``partition`` again; how many were embedded."""
    _check(store, batch_size)
    items = await store.list_items(partition, limit=MAX_PARTITION_ITEMS)
    done = 0
    for start in range(0, len(items), batch_size):
        done += await _embed(store, embedder, items[start : start + batch_size])
        progress(done, len(items))
    return done


async def _embed(store: MemoryStore, embedder: Embedder, items: Sequence[MemoryItem]) -> int:
    vectors = await embedder.embed([item.text for item in items])
    return await store.set_embeddings(
        {item.id: vector for item, vector in zip(items, vectors, strict=True)}
    )


def _check(store: MemoryStore, batch_size: int) -> None:
    if store.space is None:
        raise InvalidInput("re-embedding needs an embedder (memory.embedder is none)")
    if batch_size < 1:
        raise InvalidInput(f"batch size must be >= 1, got {batch_size}")
