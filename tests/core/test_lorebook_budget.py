"""Token budgets: the lowest priority is dropped first, never a higher one before it."""

from __future__ import annotations

from personae.core.lorebook.budget import entry_rank, keep_within
from personae.core.lorebook.lore import activate
from tests.core.lorebook_helpers import book, entry


def words(text: str) -> int:
    return len(text.split())


def test_keep_within_drops_from_the_lowest_rank_and_stops_at_the_first_misfit() -> None:
    items = [("a", 3, 5), ("b", 9, 5), ("c", 1, 1), ("d", 5, 5)]  # (name, priority, cost)
    kept, dropped = keep_within(items, budget=11, cost=lambda i: i[2], rank=lambda i: (-i[1],))
    # b (9) and d (5) fit; a (3) does not, so c (1) goes too although it would fit.
    assert [i[0] for i in kept] == ["b", "d"]
    assert [i[0] for i in dropped] == ["a", "c"]
    assert keep_within(items, budget=None, cost=lambda i: i[2], rank=lambda i: (0,)) == (items, [])


def test_rank_is_priority_then_insertion_order_then_place_in_the_book() -> None:
    lore = book(
        entry("low", priority=1, insertion_order=50),
        entry("high", priority=10, insertion_order=0),
        entry("tie-early", priority=5, insertion_order=1),
        entry("tie-late", priority=5, insertion_order=9),
        entry("no-priority", insertion_order=7),  # ranks as priority 7
    )
    ranked = sorted(lore.entries, key=entry_rank)
    assert [e.label for e in ranked] == ["high", "no-priority", "tie-late", "tie-early", "low"]


def test_a_books_token_budget_drops_its_lowest_priority_entries() -> None:
    lore = book(
        entry("a", content="one two three", priority=1),
        entry("b", content="one two three", priority=3),
        entry("c", content="one two three", priority=2),
        token_budget=7,
    )
    kept, dropped = activate([lore], ["a b c"], turn=1, render=str.strip, count_tokens=words)
    assert [k.entry.label for k in kept] == ["b", "c"]  # book order, 6 tokens
    assert dropped == 1


def test_each_book_has_its_own_budget() -> None:
    small = book(entry("a", content="x " * 5), token_budget=4)
    roomy = book(entry("a", content="x " * 5))
    kept, dropped = activate([small, roomy], ["a"], turn=1, render=str.strip, count_tokens=words)
    assert [(k.book, k.entry.label) for k in kept] == [(1, "a")]
    assert dropped == 1
