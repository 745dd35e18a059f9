"""Activated lore, ready for a prompt: text with macros expanded, its token count, where it goes.

``activate`` scans every book a character has and applies each book's own ``token_budget``;
``arrange`` sorts what is kept into the system block's slots and the chat's depth messages.
The prompt assembler decides how much room the lore gets (``core/prompt.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from personae.core.lorebook.budget import entry_rank, keep_within
from personae.core.lorebook.model import Entry, Lorebook, Placement, Position
from personae.core.lorebook.scan import MAX_RECURSION, scan
from personae.core.types import ChatMessage, Role


@dataclass(frozen=True, slots=True)
class Lore:
    book: int  # the book's place among the character's books
    entry: Entry
    text: str  # content with macros expanded
    tokens: int
    placement: Placement

    def rank(self) -> tuple[float, ...]:
        return entry_rank(self.entry, self.book)

    def order(self) -> tuple[float, int, int]:
        """Lower insertion order goes earlier in the prompt."""
        return (self.entry.insertion_order, self.book, self.entry.index)


@dataclass(frozen=True, slots=True)
class Arranged:
    slots: dict[Position, str] = field(default_factory=dict)  # system block text per slot
    at_depth: list[tuple[int, ChatMessage]] = field(default_factory=list)  # (depth, message)
    labels: tuple[str, ...] = ()  # the entries, in insertion order


def activate(
    books: Sequence[Lorebook],
    messages: Sequence[str],
    *,
    turn: int | None,
    render: Callable[[str], str],
    count_tokens: Callable[[str], int],
    missing: frozenset[Position] = frozenset(),
    max_recursion: int = MAX_RECURSION,
) -> tuple[list[Lore], int]:
    """Activated lore of every book within its own budget, and how many entries the budgets
    dropped. ``missing`` names prompt sections the character lacks (an entry placed there by
    ``@@position`` goes where it would have gone without the decorator)."""
    kept: list[Lore] = []
    dropped = 0
    for number, book in enumerate(books):
        found = []
        for entry in scan(book, messages, turn=turn, max_recursion=max_recursion):
            text = render(entry.content)
            if not text:
                continue  # macros can leave nothing, and nothing is never inserted
            placement = entry.placement
            if placement.position in missing and entry.fallback is not None:
                placement = entry.fallback
            found.append(Lore(number, entry, text, count_tokens(text), placement))
        within, over = keep_within(
            found, budget=book.token_budget, cost=lambda lore: lore.tokens, rank=Lore.rank
        )
        kept.extend(within)
        dropped += len(over)
    return kept, dropped


def arrange(lore: Sequence[Lore]) -> Arranged:
    """System block slots (entries joined by newlines) and one chat message per depth and
    role, each in insertion order."""
    ordered = sorted(lore, key=Lore.order)
    slots: dict[Position, list[str]] = {}
    groups: dict[tuple[int, Role], list[str]] = {}
    for item in ordered:
        placement = item.placement
        if placement.position is Position.DEPTH:
            groups.setdefault((placement.depth, placement.role), []).append(item.text)
        else:
            slots.setdefault(placement.position, []).append(item.text)
    return Arranged(
        slots={position: "\n".join(texts) for position, texts in slots.items()},
        at_depth=[
            (depth, ChatMessage(role, "\n".join(texts))) for (depth, role), texts in groups.items()
        ],
        labels=tuple(item.entry.label for item in ordered),
    )
