"""A conservative check that refuses regular expressions which can backtrack catastrophically.

Python's ``re`` is a backtracking engine with no timeout, and lorebook keys are matched against
text that users write. A card's regex is therefore checked once, at load, on its parse tree,
and refused when it has a shape known to blow up:

- **nested repetition**: a repeated part holding a variable repeat, ``(a+)+``, ``(a?){20}``,
  ``(\\w+\\s?)*``: exponential;
- **repeated ambiguous alternation**: a repeated group whose branches can start with the same
  character, ``(a|ab)+``, ``(\\w|_)*``: exponential;
- **two unbounded repeats in one backtracking scope**: ``.*a.*b``, ``\\w+\\s*\\w+``: cubic or
  worse on hostile text (a lookaround or an atomic group is a scope of its own, because the
  engine never backtracks into one that has matched, so ``(?=.*a)(?=.*b)`` is fine);
- **too many combinations** of optional parts and alternatives in one scope (``a?a?a?...``);
- **backreferences and conditional groups** (``(.*)\\1``), and patterns over
  ``MAX_PATTERN_CHARS``.

What passes has at most one unbounded repeat per scope, so a search costs at most about
quadratic time in the text, and the scanner caps the text (``scan.MAX_SCAN_CHARS``). The check
is deliberately blunt: it refuses some harmless patterns (``(ab?)+``) rather than miss a slow
one; the error says what to rewrite.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import Any

# ``re._parser`` is the engine's own parser (``sre_parse``, which warns on import, is its
# deprecated alias); it has no type stubs, hence the dynamic import.
_parser: Any = importlib.import_module("re._parser")
_MAXREPEAT: int = importlib.import_module("re._constants").MAXREPEAT

MAX_PATTERN_CHARS = 500
MAX_CHOICES = 1024  # combinations of optional parts / alternatives in one scope
SMALL_REPEAT = 16  # ``x{0,16}`` counts as 17 choices; a wider or open range is "unbounded"

_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
_REFUSED = {
    "GROUPREF": "backreferences are not allowed",
    "GROUPREF_IGNORE": "backreferences are not allowed",
    "GROUPREF_LOC_IGNORE": "backreferences are not allowed",
    "GROUPREF_UNI_IGNORE": "backreferences are not allowed",
    "GROUPREF_EXISTS": "conditional groups are not allowed",
}


class UnsafePattern(ValueError):
    """The pattern could take exponential or high-polynomial time; the message says why."""


def required_literal(pattern: str, flags: int = 0) -> tuple[str, bool]:
    """The longest run of plain characters every match of ``pattern`` contains ("" when none
    is certain), and whether the pattern ignores case. Only the top level counts (groups
    that change no flags are part of it); anything but a literal or a zero-width assertion
    ends a run."""
    tree = _parser.parse(pattern, flags)
    runs, run = [], []
    for op, av in _top_level(list(tree)):
        if str(op) == "LITERAL":
            run.append(chr(av))
        elif str(op) not in ("AT", "ASSERT", "ASSERT_NOT"):  # zero width keeps a run whole
            runs.append("".join(run))
            run = []
    runs.append("".join(run))
    return max(runs, key=len), bool((flags | tree.state.flags) & re.IGNORECASE)


def _top_level(items: list[Any]) -> list[Any]:
    flat = []
    for op, av in items:
        if str(op) == "SUBPATTERN" and not av[1] and not av[2]:
            flat.extend(_top_level(list(av[3])))
        else:
            flat.append((op, av))
    return flat


def check_pattern(pattern: str, flags: int = 0) -> None:
    """Raise ``UnsafePattern`` when ``pattern`` may backtrack catastrophically, ``re.error``
    when it does not parse."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsafePattern(f"longer than {MAX_PATTERN_CHARS} characters")
    tree = _parser.parse(pattern, flags)
    ignore_case = bool((flags | tree.state.flags) & re.IGNORECASE)
    _Scope(ignore_case).visit(tree, at_end=True)


class _Scope:
    """One backtracking scope: counts its unbounded repeats and its combinations."""

    def __init__(self, ignore_case: bool) -> None:
        self.ignore_case = ignore_case
        self.unbounded = 0
        self.choices = 1

    def child(self, items: Iterable[Any], *, at_end: bool) -> _Scope:
        scope = _Scope(self.ignore_case)
        scope.visit(items, at_end=at_end)
        return scope

    def visit(self, items: Iterable[Any], *, at_end: bool) -> None:
        """``at_end``: nothing follows these items in their scope, so nothing can fail after
        the last of them."""
        items = list(items)
        for index, (op, av) in enumerate(items):
            name = str(op)
            last = at_end and index == len(items) - 1
            if name in _REFUSED:
                raise UnsafePattern(_REFUSED[name])
            if name in _REPEATS:
                # A repeat that ends its scope never backtracks: ``dragon.*`` costs what
                # ``dragon`` costs.
                self._repeat(*av, counted=not last)
            elif name == "BRANCH":
                self._branch(av[1], at_end=last)
            elif name == "SUBPATTERN":
                self.visit(av[3], at_end=last)
            elif name in ("ASSERT", "ASSERT_NOT"):
                self.child(av[1], at_end=True)  # never backtracked into once it has matched
            elif name == "ATOMIC_GROUP":
                self.child(av, at_end=True)
            self._check()

    def _repeat(self, low: int, high: int, body: Any, *, counted: bool) -> None:
        if high > 1:
            if _has_variable_repeat(body):
                raise UnsafePattern("a repeated group holds a repeat of its own, as in (a+)+")
            if not _branches_distinct(body, self.ignore_case):
                raise UnsafePattern(
                    "a repeated group holds alternatives that can start alike, as in (a|ab)+"
                )
        if high != low and counted:
            if high == _MAXREPEAT or high - low > SMALL_REPEAT:
                self.unbounded += 1
            else:
                self.choices *= high - low + 1
        self.visit(body, at_end=False)

    def _branch(self, alternatives: list[Any], *, at_end: bool) -> None:
        scopes = [self.child(alt, at_end=at_end) for alt in alternatives]
        self.unbounded += max(s.unbounded for s in scopes)
        # When each branch starts with its own character, at most one is ever explored.
        if _starts_distinct(alternatives, self.ignore_case):
            self.choices *= max(s.choices for s in scopes)
        else:
            self.choices *= sum(s.choices for s in scopes)

    def _check(self) -> None:
        if self.unbounded > 1:
            raise UnsafePattern(
                "more than one unbounded repeat (*, +, {n,}) can backtrack against another, "
                "as in .*a.*b"
            )
        if self.choices > MAX_CHOICES:
            raise UnsafePattern(f"more than {MAX_CHOICES} combinations of optional parts")


def _has_variable_repeat(items: Iterable[Any]) -> bool:
    return any(
        (str(op) in _REPEATS and av[0] != av[1]) or _has_variable_repeat(_children(op, av))
        for op, av in items
    )


def _branches_distinct(items: Iterable[Any], ignore_case: bool) -> bool:
    for op, av in items:
        if str(op) == "BRANCH" and not _starts_distinct(av[1], ignore_case):
            return False
        if not _branches_distinct(_children(op, av), ignore_case):
            return False
    return True


def _children(op: Any, av: Any) -> list[Any]:
    name = str(op)
    if name in _REPEATS:
        return list(av[2])
    if name == "SUBPATTERN":
        return list(av[3])
    if name in ("ASSERT", "ASSERT_NOT"):
        return list(av[1])
    if name == "ATOMIC_GROUP":
        return list(av)
    if name == "BRANCH":
        return [item for alt in av[1] for item in alt]
    return []


def _starts_distinct(alternatives: list[Any], ignore_case: bool) -> bool:
    firsts = [_first_literal(list(alt), ignore_case) for alt in alternatives]
    return None not in firsts and len(set(firsts)) == len(firsts)


def _first_literal(items: list[Any], ignore_case: bool) -> str | None:
    if not items:
        return None
    op, av = items[0]
    if str(op) == "LITERAL":
        char = chr(av)
        return char.lower() if ignore_case else char
    if str(op) == "SUBPATTERN":
        return _first_literal(list(av[3]), ignore_case)
    return None
