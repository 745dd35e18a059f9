"""The embedding job on the reference store: batches, failures that leave items pending and
back off, recovery."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from personae.core.memory.indexing import EmbeddingJob, IndexingSettings
from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.errors import BackendUnavailable
from personae.storage.in_memory import InMemoryMemoryStore
from personae.testing import FakeEmbedder

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ME = Partition.private("u-1", "mira")


class Stop(BaseException):
    """Ends ``run_forever`` from inside its sleep."""


class Sleeps:
    def __init__(self, stop_after: int) -> None:
        self.delays: list[float] = []
        self.stop_after = stop_after

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) >= self.stop_after:
            raise Stop


async def filled(texts: list[str], embedder: FakeEmbedder) -> InMemoryMemoryStore:
    store = InMemoryMemoryStore(space=EmbeddingSpace(embedder.model_name, embedder.dimension))
    await store.add([NewMemory(ME, text, NOW) for text in texts])
    return store


async def test_pending_items_get_vectors_a_batch_at_a_time() -> None:
    embedder = FakeEmbedder(dimension=16)
    store = await filled([f"note {i}" for i in range(5)], embedder)
    job = EmbeddingJob(store, embedder, IndexingSettings(batch_size=2))
    assert [await job.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert await store.pending_embeddings() == []
    assert [len(batch) for batch in embedder.calls] == [2, 2, 1]
    assert job.embedded == 5
    hits = await store.search([ME], text="", vector=embedder.vector("note 3"), now=NOW, limit=1)
    assert hits[0].item.text == "note 3"  # the vector ranking alone finds it


async def test_a_failing_embedder_leaves_items_pending_and_backs_off() -> None:
    embedder = FakeEmbedder(dimension=16)
    embedder.fail_with = BackendUnavailable("embedder down", backend="emb")
    store = await filled(["one", "two"], embedder)
    sleeps = Sleeps(stop_after=5)
    job = EmbeddingJob(
        store,
        embedder,
        IndexingSettings(batch_size=8, initial_backoff_s=1, max_backoff_s=4),
        sleep=sleeps,
    )
    with pytest.raises(Stop):
        await job.run_forever()
    assert sleeps.delays == [1, 2, 4, 4, 4]  # doubling, capped
    assert job.failures == 5
    assert len(await store.pending_embeddings()) == 2  # nothing lost, nothing half-done


async def test_the_job_recovers_and_then_idles() -> None:
    embedder = FakeEmbedder(dimension=16)
    embedder.fail_with = BackendUnavailable("embedder down", backend="emb")
    store = await filled(["one", "two", "three"], embedder)
    settings = IndexingSettings(batch_size=2, idle_s=0.5, initial_backoff_s=1)
    sleeps = Sleeps(stop_after=3)

    async def sleep(delay: float) -> None:
        embedder.fail_with = None  # back after the first backoff
        await sleeps(delay)

    job = EmbeddingJob(store, embedder, settings, sleep=sleep)
    with pytest.raises(Stop):
        await job.run_forever()
    # The backoff, then a full batch (no wait), the last item (idle), nothing (idle).
    assert sleeps.delays == [1, 0.5, 0.5]
    assert job.failures == 0
    assert await store.pending_embeddings() == []
