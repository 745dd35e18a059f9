"""Lorebooks (world info): parsed once at load, scanned every turn, placed in the prompt.

``model`` reads a card's ``character_book`` or a standalone ``lorebook_v3`` document into a
``Lorebook`` (keys compiled and checked by ``keys``/``regex_guard``, ``@@`` decorators read by
``decorators``); ``scan`` decides which entries the recent chat activates; ``budget`` drops the
lowest priority first; ``lore`` prepares what is kept for ``core/prompt.py``. Pure: no I/O.
See docs/lorebooks.md.
"""

from personae.core.lorebook.errors import LorebookError
from personae.core.lorebook.model import (
    DEFAULT_SCAN_DEPTH,
    LOREBOOK_SPEC,
    Entry,
    Logic,
    Lorebook,
    Placement,
    Position,
    parse_book,
    parse_lorebook_v3,
)
from personae.core.lorebook.scan import MAX_RECURSION, MAX_SCAN_CHARS, scan

__all__ = [
    "DEFAULT_SCAN_DEPTH",
    "LOREBOOK_SPEC",
    "MAX_RECURSION",
    "MAX_SCAN_CHARS",
    "Entry",
    "Logic",
    "Lorebook",
    "LorebookError",
    "Placement",
    "Position",
    "parse_book",
    "parse_lorebook_v3",
    "scan",
]
