"""The profile: the facts a user told a character, always in the prompt, whatever fell out of
the window. Built from the partition's fact items (``fact:<what>``, ``core.memory.capture``):
the newest value of each single-valued fact wins (a user who moved lives in the new place),
likes and dislikes accumulate, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from personae.core.memory.capture import FACT_PREFIX
from personae.core.memory.extract import FactKind
from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.recall import normalized

#: Facts of these kinds hold many values at once; every other kind has one current value.
_MANY = frozenset({FACT_PREFIX + FactKind.LIKE, FACT_PREFIX + FactKind.DISLIKE})


class FactSource(Protocol):
    async def list_facts(self, partition: Partition, *, limit: int) -> list[MemoryItem]:
        """The partition's fact items, newest first."""
        ...


def current_facts(facts: Sequence[MemoryItem]) -> list[str]:
    """The profile's statements from ``facts`` (newest first): the newest of each kind,
    every distinct like and dislike; newest first."""
    seen_kinds: set[str] = set()
    seen_texts: set[str] = set()
    kept: list[str] = []
    for fact in facts:
        text = normalized(fact.text)
        if text in seen_texts or (fact.kind not in _MANY and fact.kind in seen_kinds):
            continue
        seen_kinds.add(fact.kind)
        seen_texts.add(text)
        kept.append(fact.text)
    return kept


def within(lines: Sequence[str], budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    """The leading ``lines`` whose ``- line`` rows fit ``budget`` tokens together."""
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = count_tokens(f"- {line}\n")
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept
