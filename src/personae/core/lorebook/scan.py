"""Activation: which entries of a lorebook the recent chat calls for.

The window is the last ``scan_depth`` messages (the user's new message included), each
scanned on its own: a key never matches across two messages. A message longer than
``MAX_SCAN_CHARS`` is scanned in its newest part, which bounds what any regex that passed
``regex_guard`` can cost. An entry is activated when it is enabled, has content, is allowed on
this turn (``@@activate_only_after``/``@@activate_only_every``), is not ``@@dont_activate``,
and either is constant (or ``@@activate``) or:

- one of its keys is found,
- its secondary keys satisfy its logic (AND_ANY, AND_ALL, NOT_ANY, NOT_ALL) when selective,
- one of its ``@@additional_keys`` is found, when it has some,
- none of its ``@@exclude_keys`` is found.

With ``recursive`` scanning, the content of activated entries counts as found text too (with
the chat), for up to ``max_recursion`` rounds, so lore can call for lore. The work is done on
sets of key ids (``index.KeyIndex``), which the book remembers per text.
"""

from __future__ import annotations

from collections.abc import Sequence

from personae.core.lorebook.index import KeyIndex
from personae.core.lorebook.model import Entry, Logic, Lorebook

MAX_SCAN_CHARS = 10_000  # of one message, its newest part
MAX_RECURSION = 3  # rounds of lore activating lore


def scan(
    book: Lorebook,
    messages: Sequence[str],
    *,
    turn: int | None = None,
    max_recursion: int = MAX_RECURSION,
) -> tuple[Entry, ...]:
    """The entries ``messages`` (oldest first, the new user message last) activate, in book
    order. ``turn`` is the user's turn number (1 for the first message); None ignores the
    turn decorators, as the spec asks when turns cannot be counted."""
    index, entries = book.index, book.entries
    window = messages[-book.scan_depth :] if book.scan_depth > 0 else ()
    chat = frozenset[int]().union(*(index.found(text[-MAX_SCAN_CHARS:]) for text in window))
    active: set[int] = set()
    for number in (*index.always, *index.entries_with(chat)):
        entry = entries[number]
        if (
            number not in active
            and _eligible(entry, turn)
            and (entry.always or _matches(index, number, entry, chat))
        ):
            active.add(number)
    if book.recursive and max_recursion > 0:
        _recurse(book, chat, active, turn, max_recursion)
    return tuple(entries[number] for number in sorted(active))


def _eligible(entry: Entry, turn: int | None) -> bool:
    if not entry.enabled or entry.never or not entry.content:
        return False
    if turn is not None:
        if entry.only_after is not None and turn < entry.only_after:
            return False
        if entry.only_every is not None and turn % entry.only_every:
            return False
    return True


def _recurse(
    book: Lorebook, chat: frozenset[int], active: set[int], turn: int | None, rounds: int
) -> None:
    index, entries = book.index, book.entries
    spoken = {n for n in active if not entries[n].prevent_recursion}
    lore = frozenset[int]().union(*(index.found(entries[n].content) for n in spoken))
    for _ in range(rounds):
        found = chat | lore
        # With the chat too: its keys may now meet secondary keys found in lore.
        new = {
            number
            for number in index.entries_with(found)
            if number not in active
            and not entries[number].exclude_recursion
            and _eligible(entries[number], turn)
            and _matches(index, number, entries[number], found)
        }
        if not new:
            return
        active.update(new)
        speaking = [entries[n].content for n in new if not entries[n].prevent_recursion]
        lore = lore.union(*(index.found(content) for content in speaking))


def _matches(index: KeyIndex, number: int, entry: Entry, found: frozenset[int]) -> bool:
    if index.primary[number].isdisjoint(found):
        return False
    if entry.logic is not None and not _secondary(entry.logic, index.secondary[number], found):
        return False
    additional = index.additional[number]
    if additional and additional.isdisjoint(found):
        return False
    return index.exclude[number].isdisjoint(found)


def _secondary(logic: Logic, keys: frozenset[int], found: frozenset[int]) -> bool:
    if logic is Logic.AND_ANY:
        return not keys.isdisjoint(found)
    if logic is Logic.AND_ALL:
        return keys <= found
    if logic is Logic.NOT_ANY:
        return keys.isdisjoint(found)
    return not keys <= found  # NOT_ALL
