"""A bounded memory of one number per key, the least recently used forgotten first."""

from __future__ import annotations

from collections import OrderedDict


class RecentCounts:
    def __init__(self, size: int) -> None:
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    def get(self, key: str) -> int | None:
        count = self._counts.get(key)
        if count is not None:
            self._counts.move_to_end(key)
        return count

    def remember(self, key: str, count: int) -> None:
        self._counts[key] = count
        self._counts.move_to_end(key)
        if len(self._counts) > self._size:
            self._counts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._counts)
