"""A book's keys, indexed for scanning: each distinct key has an id, each entry refers to ids.

Finding which keys a text holds is the costly part of a scan, so it is done once per text:
a turn's window shares all but its newest messages with the turn before, and the ids of the
keys found in a text are remembered (``found``, a bounded memo per book); a turn unions the
sets of its messages. Entries are then found from their keys (``by_key``), not the other way
round, and secondary, additional and exclude keys are set operations. The memo is the book's
only mutable state: it changes no result, only how fast one comes.

For a new text, a plain key is looked for (``in``) only when its first and last four bytes
both occur in the text: a set of every 4-byte window of the text's UTF-8, built at C speed
with ``memoryview.cast``, rules out nearly every key of a large book for the cost of two set
lookups each. The filter is exact in one direction (a key that occurs always passes).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from personae.core.lorebook.keys import Key, fold

if TYPE_CHECKING:
    from personae.core.lorebook.model import Entry

_EMPTY: frozenset[int] = frozenset()
MEMO_TEXTS = 2048  # texts whose found keys a book remembers (messages and entry contents)
GRAM = struct.calcsize("I")  # bytes in the windows of the prefilter (4 on every platform we run)


def grams(data: bytes) -> set[int]:
    """Every ``GRAM``-byte window of ``data``, as integers."""
    found: set[int] = set()
    for offset in range(GRAM):
        chunk = data[offset:]
        found.update(memoryview(chunk)[: len(chunk) - len(chunk) % GRAM].cast("I"))
    return found


def _gram(data: bytes) -> int:
    return int.from_bytes(data, sys.byteorder)


def _ends(literal: str) -> tuple[int, int] | None:
    data = literal.encode()
    return (_gram(data[:GRAM]), _gram(data[-GRAM:])) if len(data) >= GRAM else None


class KeyIndex:
    __slots__ = (
        "_by_fold",
        "_by_text",
        "_memo",
        "_patterns",
        "_short",
        "additional",
        "always",
        "by_key",
        "exclude",
        "keys",
        "primary",
        "secondary",
    )

    def __init__(self, entries: Sequence[Entry]) -> None:
        ids: dict[Key, int] = {}

        def id_set(keys: Iterable[Key]) -> frozenset[int]:
            found = frozenset(ids.setdefault(key, len(ids)) for key in keys)
            return found or _EMPTY  # most entries have no keys of most kinds: share one

        # Aligned with ``entries``: the ids of each entry's keys of each kind.
        self.primary = tuple(id_set(e.keys) for e in entries)
        self.secondary = tuple(id_set(e.secondary) for e in entries)
        self.additional = tuple(id_set(e.additional) for e in entries)
        self.exclude = tuple(id_set(e.exclude) for e in entries)
        self.always = tuple(i for i, e in enumerate(entries) if e.always)
        self.keys = tuple(ids)  # by id
        by_key: dict[int, list[int]] = {}
        for number, key_ids in enumerate(self.primary):
            for key_id in key_ids:
                by_key.setdefault(key_id, []).append(number)
        self.by_key = {key_id: tuple(numbers) for key_id, numbers in by_key.items()}
        # Grouped by how they match, so finding them is a few tight loops.
        folded = [
            (i, k.literal)
            for i, k in enumerate(self.keys)
            if k.pattern is None and not k.case_sensitive
        ]
        self._by_fold = tuple(
            (i, literal, *ends) for i, literal in folded if (ends := _ends(literal)) is not None
        )
        self._short = tuple((i, literal) for i, literal in folded if _ends(literal) is None)
        self._by_text = tuple(
            (i, k.literal)
            for i, k in enumerate(self.keys)
            if k.pattern is None and k.case_sensitive
        )
        self._patterns = tuple((i, k) for i, k in enumerate(self.keys) if k.pattern is not None)
        self._memo: dict[str, frozenset[int]] = {}

    def found(self, text: str) -> frozenset[int]:
        """The ids of the keys ``text`` contains."""
        hit = self._memo.get(text)
        if hit is None:
            folded = fold(text)
            windows = grams(folded.encode())
            ids = [
                i
                for i, literal, first, last in self._by_fold
                if first in windows and last in windows and literal in folded
            ]
            ids += [i for i, literal in self._short if literal in folded]
            ids += [i for i, literal in self._by_text if literal in text]
            ids += [i for i, key in self._patterns if key.found_in(text, folded)]
            hit = frozenset(ids)
            if len(self._memo) >= MEMO_TEXTS:
                self._memo.pop(next(iter(self._memo)), None)  # the oldest first
            self._memo[text] = hit
        return hit

    def forget(self) -> None:
        """Drop the remembered texts (for measuring a cold start)."""
        self._memo.clear()

    def entries_with(self, key_ids: Iterable[int]) -> set[int]:
        """The entries (by number) that have one of these keys as a primary key."""
        numbers: set[int] = set()
        for key_id in key_ids:
            numbers.update(self.by_key.get(key_id, ()))
        return numbers
