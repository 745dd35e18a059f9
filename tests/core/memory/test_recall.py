"""Hybrid recall scoring: fusion, weighting and de-duplication, on hand-built rankings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.recall import RecallWeights, fuse, recency
from personae.errors import InvalidInput

NOW = datetime(2025, 6, 1, tzinfo=UTC)
P = Partition.private("u", "c")
NEUTRAL = RecallWeights(recency_weight=0, importance_weight=0, fulltext_weight=1)


def item(name: str, *, age_days: float = 0, importance: float = 0.5, text: str = "") -> MemoryItem:
    return MemoryItem(
        name, P, text or f"text of {name}", "turn", importance, NOW - timedelta(days=age_days)
    )


def test_reciprocal_rank_fusion_with_k_60() -> None:
    a, b, c = item("a"), item("b"), item("c")
    hits = fuse([a, b], [b, c], now=NOW, limit=5, weights=NEUTRAL)
    scores = {hit.item.id: hit.score for hit in hits}
    assert scores == pytest.approx({"b": 1 / 62 + 1 / 61, "a": 1 / 61, "c": 1 / 62})
    assert [hit.item.id for hit in hits] == ["b", "a", "c"]
    assert (hits[0].fulltext_rank, hits[0].vector_rank) == (2, 1)


def test_full_text_counts_half_as_much_as_the_vector_ranking_by_default() -> None:
    a, b = item("a"), item("b")
    hits = fuse(
        [a], [b], now=NOW, limit=2, weights=RecallWeights(recency_weight=0, importance_weight=0)
    )
    assert [(h.item.id, h.score) for h in hits] == [
        ("b", pytest.approx(1 / 61)),
        ("a", pytest.approx(0.5 / 61)),
    ]


def test_recency_halves_every_half_life_and_the_future_counts_as_now() -> None:
    assert recency(item("x", age_days=90), NOW, 90) == pytest.approx(0.5)
    assert recency(item("x", age_days=180), NOW, 90) == pytest.approx(0.25)
    assert recency(item("x", age_days=-3), NOW, 90) == 1.0


def test_recency_and_importance_nudge_but_do_not_reorder_distant_ranks() -> None:
    old_important = item("old", age_days=365, importance=1.0)
    new_trivial = item("new", importance=0.0)
    stale = item("stale", age_days=365, importance=0.0)
    weights = RecallWeights(recency_weight=0.05, importance_weight=0.1)
    hits = fuse([], [stale, new_trivial, old_important], now=NOW, limit=3, weights=weights)
    # Importance 1 vs 0 (10 %) outweighs two places; a year of age (~5 %) outweighs one.
    assert [hit.item.id for hit in hits] == ["old", "new", "stale"]
    # Eleven places apart, no nudge is enough: the first ranked stays ahead.
    others = [item(f"f{n}", age_days=365, importance=0.0) for n in range(10)]
    far = [stale, *others, item("late", importance=1.0)]
    assert fuse([], far, now=NOW, limit=12, weights=weights)[0].item.id == "stale"


def test_texts_in_the_window_and_repeated_texts_are_dropped() -> None:
    a = item("a", text="I adopted a cat named Miso")
    b = item("b", text="  i adopted a CAT\nnamed miso ")
    c = item("c", text="Miso hates the vacuum")
    d = item("d", text="the weather")
    hits = fuse([a, b, c, d], [], now=NOW, limit=5, exclude_texts=["Oh, Miso hates the vacuum!"])
    assert [hit.item.id for hit in hits] == ["a", "d"]


def test_a_text_is_in_the_window_only_within_one_of_its_texts() -> None:
    # The window is searched as one joined string: a text spanning two of its texts, or
    # holding the character that joins them, is not in it.
    window = ["We went to the  Harbour", "\tLIGHTHOUSE at dawn\n", "a\x00b"]
    inside = item("inside", text="the harbour")
    across = item("across", text="harbour lighthouse")
    joiner = item("joiner", text="Harbour\x00lighthouse")
    own = item("own", text="a\x00b")
    hits = fuse([inside, across, joiner, own], [], now=NOW, limit=5, exclude_texts=window)
    assert [hit.item.id for hit in hits] == ["across", "joiner"]
    assert [h.item.id for h in fuse([inside], [], now=NOW, limit=5, exclude_texts=[])] == ["inside"]


def test_limit_and_bad_weights() -> None:
    items = [item(str(n)) for n in range(10)]
    assert len(fuse(items, items, now=NOW, limit=3)) == 3
    assert fuse(items, [], now=NOW, limit=0) == []
    with pytest.raises(InvalidInput):
        fuse(items, [], now=NOW, limit=-1)
    for bad in ({"rrf_k": 0}, {"half_life_days": 0}, {"recency_weight": 2}, {"fulltext_weight": 0}):
        with pytest.raises(InvalidInput):
            RecallWeights(**bad)  # type: ignore[arg-type]
