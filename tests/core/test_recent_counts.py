"""RecentCounts: one number per key, bounded, the least recently used forgotten first."""

from __future__ import annotations

from personae.core.recent_counts import RecentCounts


def test_remembers_the_latest_count_per_key() -> None:
    counts = RecentCounts(3)
    assert counts.get("a") is None
    counts.remember("a", 5)
    counts.remember("a", 7)
    assert counts.get("a") == 7
    assert len(counts) == 1


def test_forgets_the_least_recently_used_past_its_size() -> None:
    counts = RecentCounts(2)
    counts.remember("a", 1)
    counts.remember("b", 2)
    assert counts.get("a") == 1  # read: now the most recent
    counts.remember("c", 3)  # "b" goes
    assert (counts.get("a"), counts.get("b"), counts.get("c")) == (1, None, 3)
    assert len(counts) == 2
