"""Token budgets for activated lore: the lowest priority is dropped first.

Entries are ranked by priority (higher kept first; a missing priority is the entry's
``insertion_order``, as the V3 spec allows), then by insertion order, then by their place in
the book. The highest-ranked are kept while they fit; from the first that does not fit on,
everything ranked below it is dropped too, so a dropped entry never outranks a kept one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from personae.core.lorebook.model import Entry

T = TypeVar("T")


def entry_rank(entry: Entry, book: int = 0) -> tuple[float, ...]:
    """Sorts the entries to keep first, first."""
    return (-entry.priority, -entry.insertion_order, book, entry.index)


def keep_within(
    items: Sequence[T],
    *,
    budget: int | None,
    cost: Callable[[T], int],
    rank: Callable[[T], tuple[float, ...]],
) -> tuple[list[T], list[T]]:
    """Split ``items`` into (kept, dropped), each in the order given. ``budget`` None keeps
    everything."""
    if budget is None:
        return list(items), []
    kept: set[int] = set()
    used = 0
    for index in sorted(range(len(items)), key=lambda i: rank(items[i])):
        price = cost(items[index])
        if used + price > budget:
            break
        used += price
        kept.add(index)
    return (
        [item for index, item in enumerate(items) if index in kept],
        [item for index, item in enumerate(items) if index not in kept],
    )
