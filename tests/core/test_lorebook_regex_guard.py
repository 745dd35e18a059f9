"""Regex keys: catastrophically slow shapes are refused at load; what passes stays fast."""

from __future__ import annotations

import re
import time

import pytest

from personae.core.lorebook import MAX_SCAN_CHARS
from personae.core.lorebook.regex_guard import (
    MAX_PATTERN_CHARS,
    UnsafePattern,
    check_pattern,
    required_literal,
)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a+)+b", "holds a repeat of its own"),
        (r"(a*)*", "holds a repeat of its own"),
        (r"(a?){25}a{25}", "holds a repeat of its own"),
        (r"(\w+\s?)*$", "holds a repeat of its own"),
        (r"(a|ab)+c", "alternatives that can start alike"),
        (r"(?i)(?:Ab|ac)+d", "alternatives that can start alike"),
        (r".*a.*b", "more than one unbounded repeat"),
        (r"\w+\s*\w+!", "more than one unbounded repeat"),
        (r"(?=.*a.*b)", "more than one unbounded repeat"),  # within one lookahead
        (r"x{0,100}y{0,100}z", "more than one unbounded repeat"),
        ("a?" * 11 + "b", "combinations"),
        (r"(\w+)\s\1", "backreferences"),
        (r"(a)?(?(1)b|c)", "conditional groups"),
        ("a" * (MAX_PATTERN_CHARS + 1), "longer than"),
    ],
)
def test_catastrophic_shapes_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(UnsafePattern, match=re.escape(reason)):
        check_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bdragons?\b",
        r"^hail(stones?)?$",
        r"(elf|elves|elven)",
        r"(?:red|blue) (?:dragon|wyrm)s?",
        r"dragon.*fire",
        r".*dragon.*",  # a repeat that ends the pattern never backtracks
        r"(?=.*\bking\b)(?=.*\bcrown\b)",  # each lookahead is its own scope
        r"(?>.*a).*b",  # so is an atomic group
        r"\d{4}-\d{2}-\d{2}",
        r"(?:ha)+",
        r"(?:cat|dog)+",  # repeated, but each branch starts with its own letter
        r"(\w|_)*x",  # one character class after the engine's own folding
    ],
)
def test_everyday_patterns_pass(pattern: str) -> None:
    check_pattern(pattern)


def test_an_invalid_pattern_is_a_regex_error() -> None:
    with pytest.raises(re.error):
        check_pattern("(unclosed")


@pytest.mark.parametrize("pattern", [r".*dragon", r"a.*b", r"(?=.*king)(?=.*crown)x"])
def test_the_worst_accepted_shapes_stay_bounded_on_hostile_text(pattern: str) -> None:
    # One unbounded repeat per scope: at worst quadratic in the capped text. A refused
    # pattern such as .*a.*b takes about ten seconds on 4,000 characters.
    hostile = "a" * MAX_SCAN_CHARS
    compiled = re.compile(pattern)
    started = time.perf_counter()
    compiled.search(hostile)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("pattern", "needle", "ignore_case"),
    [
        (r"\bkalo(s|es)?\b", "kalo", False),
        (r"(?i)Dragon.*fire", "Dragon", True),
        (r"(?:the )?dragons?", "dragon", False),  # an optional part ends a run
        (r"cat|dog", "", False),
        (r"dragon|dragons", "dragon", False),  # the engine factors the common prefix
        (r"(?=x)abc\b", "abc", False),  # zero-width parts keep a run whole
        (r"ab(?i:cd)ef", "ab", False),  # a group that changes flags ends a run
    ],
)
def test_required_literal(pattern: str, needle: str, ignore_case: bool) -> None:
    assert required_literal(pattern) == (needle, ignore_case)
