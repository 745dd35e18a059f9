"""The MemoryStore contract: the SQLite store and the in-memory reference pass this same suite.

Vectors come from ``FakeEmbedder`` (word hashing): texts sharing words are near.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.core.memory.items import EmbeddingSpace, MemoryItem, NewMemory, Partition
from personae.core.ports import MemoryStore
from personae.errors import InvalidInput
from personae.storage.in_memory import InMemoryMemoryStore
from personae.storage.postgres import PostgresMemoryStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeEmbedder
from tests.postgres_server import shared_server

EMBEDDER = FakeEmbedder(dimension=32)
SPACE = EmbeddingSpace(EMBEDDER.model_name, EMBEDDER.dimension)
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ALICE = Partition.private("u-alice", "mira")
BOB = Partition.private("u-bob", "mira")
ALICE_ELSEWHERE = Partition.private("u-alice", "rex")
LORE = Partition.knowledge("mira")


class Backend(Protocol):
    def make(self, space: EmbeddingSpace | None = SPACE) -> MemoryStore: ...


class SqliteBackend:
    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path
        self.count = itertools.count()

    def make(self, space: EmbeddingSpace | None = SPACE) -> MemoryStore:
        return SqliteMemoryStore(self.folder / f"memory-{next(self.count)}.db", space=space)


class InMemoryBackend:
    def __init__(self, tmp_path: Path) -> None:
        pass

    def make(self, space: EmbeddingSpace | None = SPACE) -> MemoryStore:
        return InMemoryMemoryStore(space=space)


class PostgresBackend:
    """A fresh database on the session's PostgreSQL for every store it makes."""

    def __init__(self, tmp_path: Path) -> None:
        pass

    def make(self, space: EmbeddingSpace | None = SPACE) -> MemoryStore:
        return PostgresMemoryStore(shared_server().create_database(), space=space)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": SqliteBackend,
    "in_memory": InMemoryBackend,
    "postgres": PostgresBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[MemoryStore]:
    async with backend.make() as opened:
        yield opened


def memory(
    text: str,
    partition: Partition = ALICE,
    *,
    embed: bool = True,
    age_days: float = 0,
    **kwargs: object,
) -> NewMemory:
    vector = tuple(EMBEDDER.vector(text)) if embed else None
    created = NOW - timedelta(days=age_days)
    return NewMemory(partition, text, created, embedding=vector, **kwargs)  # type: ignore[arg-type]


async def search(
    store: MemoryStore, text: str, *partitions: Partition, vector: bool = True, **kwargs: object
) -> list[MemoryItem]:
    hits = await store.search(
        list(partitions) or [ALICE],
        text=text,
        vector=EMBEDDER.vector(text) if vector else None,
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )
    return [hit.item for hit in hits]


# --- add, get, list -------------------------------------------------------------------------


async def test_add_returns_stored_items_that_get_and_list_return(store: MemoryStore) -> None:
    first, second = await store.add(
        [
            memory(
                "My sister Clara lives in Lisbon",
                kind="fact",
                importance=0.9,
                source_message_ids=("m1",),
            ),
            memory("We talked about the weather", age_days=-1, embed=False),
        ]
    )
    assert first.id != second.id
    assert (first.kind, first.importance, first.source_message_ids) == ("fact", 0.9, ("m1",))
    assert first.embedding_space == SPACE
    assert second.embedding_space is None  # pending
    assert await store.get([second.id, "missing", first.id]) == [second, first]
    assert await store.list_items(ALICE) == [second, first]  # newest first
    assert await store.list_items(ALICE, limit=1) == [second]
    assert await store.list_items(BOB) == []


# --- search -----------------------------------------------------------------------------------


async def test_full_text_finds_items_by_word_within_the_partition(store: MemoryStore) -> None:
    await store.add(
        [
            memory("My sister Clara lives in Lisbon"),
            memory("I had pasta for dinner"),
            memory("Lisbon is where Bob grew up", BOB),
        ]
    )
    found = await search(store, "Where does Clara live?", vector=False)
    assert [item.text for item in found] == ["My sister Clara lives in Lisbon"]
    assert await search(store, "what is it?", vector=False) == []  # only function words


async def test_the_vector_ranking_finds_what_full_text_cannot(store: MemoryStore) -> None:
    await store.add([memory("pasta dinner tonight"), memory("Clara Lisbon sister")])
    hits = await store.search(
        [ALICE], text="?", vector=EMBEDDER.vector("Clara Lisbon sister"), now=NOW, limit=1
    )
    assert [hit.item.text for hit in hits] == ["Clara Lisbon sister"]
    assert (hits[0].fulltext_rank, hits[0].vector_rank) == (None, 1)


async def test_an_item_found_by_both_rankings_comes_first(store: MemoryStore) -> None:
    await store.add(
        [
            memory("the garden roses bloom"),
            memory("roses garden bloom in june, said my grandmother about her garden"),
            memory("completely unrelated words here"),
        ]
    )
    hits = await store.search(
        [ALICE], text="garden roses", vector=EMBEDDER.vector("the garden roses bloom"), now=NOW
    )
    assert hits[0].item.text == "the garden roses bloom"
    assert hits[0].fulltext_rank is not None
    assert hits[0].vector_rank == 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_search_spans_the_partitions_named_and_only_those(store: MemoryStore) -> None:
    await store.add(
        [
            memory("Lisbon trams are yellow", LORE),
            memory("I visited Lisbon last spring"),
            memory("Lisbon again, with Rex", ALICE_ELSEWHERE),
            memory("Lisbon for Bob", BOB),
        ]
    )
    found = await search(store, "Lisbon", ALICE, LORE)
    assert {item.text for item in found} == {
        "Lisbon trams are yellow",
        "I visited Lisbon last spring",
    }
    assert {item.partition for item in found} == {ALICE, LORE}


async def test_items_in_the_prompt_window_and_repeats_are_left_out(store: MemoryStore) -> None:
    await store.add(
        [
            memory("I adopted a cat named Miso"),
            memory("i adopted a  CAT named Miso", age_days=3),
            memory("Miso the cat hates the vacuum"),
        ]
    )
    found = await search(store, "cat Miso")
    assert len(found) == 2  # the two spellings of one text count once
    window = ["Oh, and Miso the cat hates the vacuum, by the way."]
    assert [i.text for i in await search(store, "cat Miso", exclude_texts=window)] == [
        "I adopted a cat named Miso"
    ]


async def test_limit_bounds_the_hits(store: MemoryStore) -> None:
    await store.add([memory(f"coffee number {n}") for n in range(12)])
    assert len(await search(store, "coffee", limit=3)) == 3
    assert await search(store, "coffee", limit=0) == []


async def test_recency_and_importance_break_otherwise_equal_hits(store: MemoryStore) -> None:
    await store.add(
        [
            memory("tea with lemon", age_days=400, importance=0.5),
            memory("tea with honey", age_days=0, importance=0.5),
            memory("tea with milk", age_days=400, importance=1.0),
        ]
    )
    hits = await store.search([ALICE], text="tea", now=NOW)
    scores = {hit.item.text: hit.score for hit in hits}
    assert scores["tea with honey"] > scores["tea with lemon"]
    assert scores["tea with milk"] > scores["tea with lemon"]


# --- pending embeddings -----------------------------------------------------------------------


async def test_pending_items_are_found_by_text_then_embedded_by_a_job(store: MemoryStore) -> None:
    (waiting,) = await store.add([memory("my bicycle is bright orange", embed=False)])
    (done,) = await store.add([memory("my kayak is green")])
    assert await store.pending_embeddings() == [waiting]
    hits = await store.search(
        [ALICE], text="bicycle", vector=EMBEDDER.vector("bicycle bright orange"), now=NOW
    )
    ranks = {h.item.id: (h.fulltext_rank, h.vector_rank) for h in hits}
    assert ranks[waiting.id] == (1, None)  # by text only: it has no vector yet
    assert ranks[done.id] == (None, 1)

    assert (
        await store.set_embeddings({waiting.id: EMBEDDER.vector(waiting.text), "gone": [0.0] * 32})
        == 1
    )
    assert await store.pending_embeddings() == []
    (embedded,) = await store.get([waiting.id])
    assert embedded.embedding_space == SPACE
    hits = await store.search([ALICE], text="?", vector=EMBEDDER.vector(waiting.text), now=NOW)
    assert (hits[0].item.id, hits[0].vector_rank) == (waiting.id, 1)
    assert done.id in {h.item.id for h in hits}


async def test_pending_embeddings_come_oldest_first_up_to_the_limit(store: MemoryStore) -> None:
    added = await store.add([memory(f"note {n}", embed=False) for n in range(5)])
    assert await store.pending_embeddings(limit=3) == added[:3]


async def test_a_store_without_an_embedder_keeps_full_text_memory(backend: Backend) -> None:
    async with backend.make(space=None) as store:
        await store.add([memory("the lighthouse keeper", embed=False)])
        assert [i.text for i in await search(store, "lighthouse", vector=False)] == [
            "the lighthouse keeper"
        ]
        assert await store.pending_embeddings() == []
        with pytest.raises(InvalidInput, match="no embedder"):
            await store.add([memory("with a vector")])
        with pytest.raises(InvalidInput, match="no embedder"):
            await search(store, "lighthouse")
        with pytest.raises(InvalidInput, match="no embedder"):
            await store.set_embeddings({})


# --- delete and purge -------------------------------------------------------------------------


async def test_delete_by_ids_by_partition_and_by_user(store: MemoryStore) -> None:
    one, two, _ = await store.add([memory("alpha one"), memory("alpha two"), memory("alpha three")])
    await store.add([memory("alpha rex", ALICE_ELSEWHERE), memory("alpha bob", BOB)])
    assert await store.delete(ALICE, [one.id, "missing"]) == 1
    assert await store.delete(BOB, [two.id]) == 0  # not Bob's
    assert {i.text for i in await search(store, "alpha")} == {"alpha two", "alpha three"}
    assert await store.delete(ALICE) == 2
    assert await search(store, "alpha") == []
    assert await store.delete_user("u-alice") == 1  # the item with rex
    assert await search(store, "alpha", ALICE_ELSEWHERE) == []
    assert [i.text for i in await search(store, "alpha", BOB)] == ["alpha bob"]
    assert await store.get([one.id, two.id]) == []


async def test_purge_removes_old_private_items_and_keeps_knowledge(store: MemoryStore) -> None:
    await store.add(
        [
            memory("old walk in the park", age_days=400),
            memory("new walk in the park", age_days=1),
            memory("park opening hours", LORE, age_days=400),
        ]
    )
    assert await store.purge_before(NOW - timedelta(days=365)) == 1
    found = await search(store, "park", ALICE, LORE)
    assert {i.text for i in found} == {"new walk in the park", "park opening hours"}


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        NewMemory(ALICE, text, NOW)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"importance": 1.5}, "importance"),
        ({"importance": float("nan")}, "importance"),
        ({"kind": ""}, "kind"),
        ({"created_at": datetime(2025, 1, 1)}, "timezone"),
    ],
)
def test_malformed_items_are_refused(kwargs: dict[str, object], error: str) -> None:
    values: dict[str, object] = {"partition": ALICE, "text": "hi", "created_at": NOW} | kwargs
    with pytest.raises(InvalidInput, match=error):
        NewMemory(**values)  # type: ignore[arg-type]


def test_malformed_partitions_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Partition.private("", "mira")
    with pytest.raises(InvalidInput):
        Partition.private("u\x00x", "mira")
    with pytest.raises(InvalidInput):
        Partition.knowledge("")


async def test_a_bad_vector_refuses_the_whole_batch(store: MemoryStore) -> None:
    bad = NewMemory(ALICE, "short vector", NOW, embedding=(1.0, 0.0))
    nan = NewMemory(ALICE, "nan vector", NOW, embedding=(float("nan"),) * 32)
    for wrong in (bad, nan):
        with pytest.raises(InvalidInput):
            await store.add([memory("fine item"), wrong])
    assert await store.list_items(ALICE) == []


async def test_bad_search_and_embedding_arguments_are_refused(store: MemoryStore) -> None:
    (item,) = await store.add([memory("kept", embed=False)])
    with pytest.raises(InvalidInput, match="dimensions"):
        await store.search([ALICE], text="kept", vector=[1.0, 2.0], now=NOW)
    with pytest.raises(InvalidInput, match="partition"):
        await store.search([], text="kept", now=NOW)
    with pytest.raises(InvalidInput, match="limit"):
        await store.search([ALICE], text="kept", now=NOW, limit=-1)
    with pytest.raises(InvalidInput, match="dimensions"):
        await store.set_embeddings({item.id: [1.0]})
    with pytest.raises(InvalidInput):
        await store.delete_user("")
    with pytest.raises(InvalidInput, match="timezone"):
        await store.purge_before(datetime(2025, 1, 1))
    assert await store.pending_embeddings() == [item]  # nothing changed


# --- privacy: a property over random partitions ------------------------------------------------

USERS = st.sampled_from(["u1", "u2", "u3"])
CHARACTERS = st.sampled_from(["mira", "rex"])
WORDS = st.sampled_from(
    ["lisbon", "sister", "cat", "coffee", "garden", "bicycle", "rain", "jazz", "pasta", "tram"]
)
TEXTS = st.lists(WORDS, min_size=1, max_size=5).map(" ".join)
ENTRIES = st.lists(st.tuples(USERS, CHARACTERS, TEXTS), min_size=1, max_size=25)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=ENTRIES, asker=USERS, query=TEXTS, with_vector=st.booleans())
def test_recall_never_returns_another_users_items(
    backend: Backend,
    entries: list[tuple[str, str, str]],
    asker: str,
    query: str,
    with_vector: bool,
) -> None:
    async def scenario() -> None:
        async with backend.make() as store:
            await store.add([memory(text, Partition.private(u, c)) for u, c, text in entries])
            mine = [Partition.private(asker, c) for c in ("mira", "rex")]
            hits = await store.search(
                mine,
                text=query,
                vector=EMBEDDER.vector(query) if with_vector else None,
                now=NOW,
                limit=50,
            )
            assert all(hit.item.partition.user_id == asker for hit in hits)
            expected = {
                t for u, _, t in entries if u == asker and set(t.split()) & set(query.split())
            }
            assert expected <= {hit.item.text for hit in hits}  # and nothing of theirs is lost

    asyncio.run(scenario())
