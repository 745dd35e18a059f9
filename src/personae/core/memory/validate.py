"""Argument checks every MemoryStore makes, so all of them refuse the same bad input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.errors import InvalidInput


def check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidInput(f"limit must be >= 0, got {limit}")


def check_search(
    space: EmbeddingSpace | None,
    partitions: Sequence[Partition],
    vector: Sequence[float] | None,
    limit: int,
) -> None:
    """The argument checks every store makes before a search."""
    check_limit(limit)
    if not partitions:
        raise InvalidInput("name at least one memory partition to search")
    if vector is not None:
        if space is None:
            raise InvalidInput("this memory store has no embedder, so it takes no vectors")
        space.check(tuple(vector))


def check_vectors(items: Iterable[NewMemory], space: EmbeddingSpace | None) -> None:
    """``InvalidInput`` unless every vector given is in ``space``."""
    for item in items:
        if item.embedding is not None:
            if space is None:
                raise InvalidInput("this memory store has no embedder, so it takes no vectors")
            space.check(item.embedding)
