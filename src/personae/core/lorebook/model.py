"""A lorebook, parsed and validated once: from a card's ``character_book`` (V2 or V3) or a
standalone ``lorebook_v3`` document.

Everything the scanner needs is decided here, so a turn only matches: keys are compiled
(``keys.py``), decorators are read (``decorators.py``), and the placement of each entry is
resolved from, in order of precedence, ``@@position``, ``@@depth``/``@@role``, SillyTavern's
``extensions.position``/``depth``/``role`` and the spec's ``position``. What a book says that
we cannot honour (an unknown decorator, a SillyTavern position with no equivalent) is a
warning on the book; what makes it unusable (a wrong type, an invalid or unsafe regex) is a
``LorebookError`` with the path of the problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, TypeGuard

from pydantic import ValidationError

from personae.core.lorebook.decorators import Decorators, parse_decorators
from personae.core.lorebook.errors import LorebookError
from personae.core.lorebook.index import KeyIndex
from personae.core.lorebook.keys import Key, compile_keys
from personae.core.lorebook.shape import BookShape, EntryShape, describe
from personae.core.types import Role

DEFAULT_SCAN_DEPTH = 2  # SillyTavern's default: the last reply and the new message
LOREBOOK_SPEC = "lorebook_v3"


class Position(enum.StrEnum):
    BEFORE_CHAR = "before_char"  # system block, before the persona
    AFTER_DESC = "after_desc"  # system block, right after the persona
    PERSONALITY = "personality"  # on the personality line
    SCENARIO = "scenario"  # on the scenario line
    AFTER_CHAR = "after_char"  # system block, after the scenario
    DEPTH = "depth"  # inside the chat, ``depth`` messages from its end, with a role


class Logic(enum.StrEnum):
    """How secondary keys gate a selective entry (SillyTavern's ``selectiveLogic``)."""

    AND_ANY = "and_any"  # at least one secondary key (the V2/V3 spec's ``selective``)
    NOT_ALL = "not_all"  # not all of them
    NOT_ANY = "not_any"  # none of them
    AND_ALL = "and_all"  # all of them


@dataclass(frozen=True, slots=True)
class Placement:
    position: Position
    depth: int = 4  # for Position.DEPTH: 0 = after the newest message
    role: Role = Role.SYSTEM  # for Position.DEPTH


@dataclass(frozen=True, slots=True)
class Entry:
    index: int  # its place in the book
    label: str  # name, comment or path, for logs and tests
    content: str  # without decorators; macros still to expand
    keys: tuple[Key, ...]
    placement: Placement
    secondary: tuple[Key, ...] = ()
    logic: Logic | None = None  # None: secondary keys do not apply
    additional: tuple[Key, ...] = ()  # @@additional_keys: one of them must match too
    exclude: tuple[Key, ...] = ()  # @@exclude_keys: none of them may match
    enabled: bool = True
    always: bool = False  # ``constant`` or @@activate
    never: bool = False  # @@dont_activate (without @@activate)
    insertion_order: float = 0  # lower goes earlier in the prompt
    priority: float = 0  # lower is dropped first; ``insertion_order`` when not given
    only_after: int | None = None  # @@activate_only_after: the user's turn it waits for
    only_every: int | None = None  # @@activate_only_every
    fallback: Placement | None = None  # when @@position names a section the prompt lacks
    exclude_recursion: bool = False  # only the chat can activate it (SillyTavern)
    prevent_recursion: bool = False  # its content activates nothing (SillyTavern)


@dataclass(frozen=True)  # no slots: ``index`` is cached on the instance
class Lorebook:
    name: str | None
    entries: tuple[Entry, ...]
    scan_depth: int = DEFAULT_SCAN_DEPTH
    token_budget: int | None = None  # tokens of content; None: only the prompt's own limit
    recursive: bool = False  # activated content can activate other entries
    warnings: tuple[str, ...] = ()

    @cached_property
    def index(self) -> KeyIndex:
        """Built on the first scan: most books loaded at start-up are never scanned."""
        return KeyIndex(self.entries)


def parse_book(data: object) -> Lorebook:
    """A ``character_book`` object (V2 or V3) as a Lorebook, or ``LorebookError``."""
    if not isinstance(data, dict):
        raise LorebookError("(top): expected an object holding 'entries'")
    try:
        shape = BookShape.model_validate(data)
    except ValidationError as exc:
        raise LorebookError(describe(exc)) from None
    warnings: list[str] = []
    entries = tuple(_entry(index, raw, warnings) for index, raw in enumerate(shape.entries))
    return Lorebook(
        name=shape.name or None,
        entries=entries,
        scan_depth=DEFAULT_SCAN_DEPTH if shape.scan_depth is None else shape.scan_depth,
        token_budget=shape.token_budget,
        recursive=bool(shape.recursive_scanning),
        warnings=tuple(warnings),
    )


def parse_lorebook_v3(document: object) -> Lorebook:
    """A standalone lorebook, ``{"spec": "lorebook_v3", "data": {...}}``."""
    if not isinstance(document, dict):
        raise LorebookError(f"(top): expected an object with spec {LOREBOOK_SPEC!r}")
    spec = document.get("spec")
    if spec != LOREBOOK_SPEC:
        raise LorebookError(f"spec: {spec!r} is not {LOREBOOK_SPEC!r}")
    if not isinstance(document.get("data"), dict):
        raise LorebookError("data: expected an object holding the lorebook")
    try:
        return parse_book(document["data"])
    except LorebookError as exc:
        raise LorebookError(f"data.{exc}") from None


# Keys only SillyTavern writes into an entry's extensions; it also stamps ``use_regex: true``
# on every entry, although its bare keys are plain text.
_SILLYTAVERN_KEYS = ("selectiveLogic", "display_index", "useProbability", "probability")
_ST_LOGIC = (Logic.AND_ANY, Logic.NOT_ALL, Logic.NOT_ANY, Logic.AND_ALL)
_ST_ROLES = (Role.SYSTEM, Role.USER, Role.ASSISTANT)
_ST_ELSEWHERE = {2: "author's note", 3: "author's note", 5: "examples", 6: "examples", 7: "outlet"}
_DECORATED_POSITIONS = {
    "before_desc": Position.BEFORE_CHAR,
    "before_char": Position.BEFORE_CHAR,
    "after_desc": Position.AFTER_DESC,
    "personality": Position.PERSONALITY,
    "scenario": Position.SCENARIO,
    "after_char": Position.AFTER_CHAR,
}


def _entry(index: int, shape: EntryShape, warnings: list[str]) -> Entry:
    where = f"entries.{index}"
    decorated = parse_decorators(shape.content)
    warnings.extend(f"{where}: {warning}" for warning in decorated.warnings)
    d, ext = decorated.decorators, shape.extensions
    by_sillytavern = any(key in ext for key in _SILLYTAVERN_KEYS)
    case_sensitive = (
        shape.case_sensitive
        if shape.case_sensitive is not None
        else ext.get("case_sensitive") is True
    )

    def keys(texts: list[str] | tuple[str, ...], name: str) -> tuple[Key, ...]:
        return compile_keys(
            texts,
            regex=shape.use_regex and not by_sillytavern,
            case_sensitive=case_sensitive,
            whole_words=ext.get("match_whole_words") is True,
            where=f"{where}.{name}",
        )

    secondary = keys(shape.secondary_keys or [], "secondary_keys")
    logic = None
    if secondary and shape.selective:
        logic = _logic(ext.get("selectiveLogic"), where, warnings)
    elif secondary:
        warnings.append(f"{where}: secondary_keys are ignored because selective is not true")
    placement, fallback = _placement(shape, d, where, warnings)
    return Entry(
        index=index,
        label=shape.name or shape.comment or where,
        content=decorated.content,
        keys=keys(shape.keys, "keys"),
        placement=placement,
        secondary=secondary,
        logic=logic,
        additional=keys(d.additional_keys, "@@additional_keys"),
        exclude=keys(d.exclude_keys, "@@exclude_keys"),
        enabled=shape.enabled,
        always=bool(shape.constant) or d.activate,
        never=d.dont_activate and not d.activate,
        insertion_order=float(shape.insertion_order),
        priority=float(shape.insertion_order if shape.priority is None else shape.priority),
        only_after=d.activate_only_after,
        only_every=d.activate_only_every,
        fallback=fallback,
        exclude_recursion=ext.get("exclude_recursion") is True,
        prevent_recursion=ext.get("prevent_recursion") is True,
    )


def _logic(raw: Any, where: str, warnings: list[str]) -> Logic:
    if raw is None:
        return Logic.AND_ANY
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(_ST_LOGIC):
        return _ST_LOGIC[raw]
    if isinstance(raw, str) and raw.lower() in Logic.__members__.values():
        return Logic(raw.lower())
    choices = ", ".join(logic.value for logic in Logic)
    warnings.append(f"{where}: extensions.selectiveLogic {raw!r} is not 0-3 or {choices}; and_any")
    return Logic.AND_ANY


def _placement(
    shape: EntryShape, d: Decorators, where: str, warnings: list[str]
) -> tuple[Placement, Placement | None]:
    """Where the entry goes, and where it goes instead when @@position names a section that
    the character lacks (the spec: the decorator is then ignored)."""
    base = _base_placement(shape, where, warnings)
    if d.depth is not None:
        base = Placement(Position.DEPTH, d.depth, d.role or base.role)
    elif d.role is not None and base.position is Position.DEPTH:
        base = replace(base, role=d.role)
    if d.position is None:  # @@position wins over @@depth, as the spec says
        return base, None
    position = _DECORATED_POSITIONS[d.position]
    fallback = base if position in (Position.PERSONALITY, Position.SCENARIO) else None
    return Placement(position), fallback


def _base_placement(shape: EntryShape, where: str, warnings: list[str]) -> Placement:
    ext = shape.extensions
    raw = ext.get("position") if _is_int(ext.get("position")) else shape.position
    if raw is None or raw in ("", "before_char", 0):
        return Placement(Position.BEFORE_CHAR)
    if raw in ("after_char", 1):
        return Placement(Position.AFTER_CHAR)
    if raw == 4:  # SillyTavern's "@ depth"
        depth = ext.get("depth", 4)
        role = ext.get("role")
        return Placement(
            Position.DEPTH,
            depth if _is_int(depth) and depth >= 0 else 4,
            _ST_ROLES[role] if _is_int(role) and 0 <= role < len(_ST_ROLES) else Role.SYSTEM,
        )
    if raw in _ST_ELSEWHERE:
        what = f"SillyTavern position {raw} ({_ST_ELSEWHERE[raw]}) has no equivalent"
    else:
        what = f"position {raw!r} is not before_char or after_char"
    warnings.append(f"{where}: {what}; placed after_char")
    return Placement(Position.AFTER_CHAR)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
