"""Character Card V3 lorebook decorators: ``@@name value`` lines at the top of an entry.

Parsed once, at load. The decorators that matter for activation and placement are understood:
``@@depth N``, ``@@role system|user|assistant``, ``@@position before_desc|after_desc|
personality|scenario`` (and ``before_char|after_char``), ``@@activate_only_after N``,
``@@activate_only_every N``, ``@@dont_activate``, ``@@activate``, ``@@exclude_keys a,b`` and
``@@additional_keys a,b``. As the spec asks, a decorator we do not know, or whose value is
not valid, is ignored and its ``@@@`` fallbacks (the lines right after it) are tried in
order; only the first decorator of a name counts. Each ignored one leaves a warning for the
loader to log, so an author can see why an entry does not behave. The lines (and the blank
lines around them) are taken out of the content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from personae.core.types import TEXT_ROLES, Role

POSITIONS = ("before_desc", "after_desc", "personality", "scenario", "before_char", "after_char")


@dataclass(frozen=True, slots=True)
class Decorators:
    depth: int | None = None  # 0 = after the newest message
    role: Role | None = None
    position: str | None = None  # one of POSITIONS
    activate_only_after: int | None = None  # the user's turn (1 = the first) it waits for
    activate_only_every: int | None = None  # only on turns divisible by this
    dont_activate: bool = False
    activate: bool = False
    additional_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decorated:
    decorators: Decorators
    content: str  # without the decorator lines
    warnings: tuple[str, ...] = field(default=())


class _Invalid(ValueError):
    pass


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise _Invalid(f"{value.strip()!r} is not a whole number") from None
        if number < minimum:
            raise _Invalid(f"{number} is below {minimum}")
        return number

    return parse


def _depth(value: str) -> int:
    # The spec: a depth below 1 means after the newest message, which is our depth 0.
    return max(_whole(-(2**31))(value), 0)


def _role(value: str) -> Role:
    role = value.strip().lower()
    if role not in TEXT_ROLES:
        raise _Invalid(f"{value.strip()!r} is not system, user or assistant")
    return Role(role)


def _position(value: str) -> str:
    position = value.strip().lower()
    if position not in POSITIONS:
        raise _Invalid(f"{value.strip()!r} is not one of {', '.join(POSITIONS)}")
    return position


def _flag(value: str) -> bool:
    return True


def _names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise _Invalid("no keys given")
    return names


_PARSERS: dict[str, Callable[[str], Any]] = {
    "depth": _depth,
    "role": _role,
    "position": _position,
    "activate_only_after": _whole(0),
    "activate_only_every": _whole(1),
    "dont_activate": _flag,
    "activate": _flag,
    "additional_keys": _names,
    "exclude_keys": _names,
}
_DEFAULTS = {f.name: f.default for f in fields(Decorators)}


def parse_decorators(content: str) -> Decorated:
    """Split ``content`` into its leading decorators and the text that goes in a prompt."""
    lines = content.replace("\r\n", "\n").split("\n")
    groups: list[list[tuple[str, str]]] = []  # a decorator and its @@@ fallbacks
    body_start = len(lines)
    decorated = False
    for index, raw in enumerate(lines):
        line = raw.strip()
        if line.startswith("@@@"):
            decorated = True
            if groups:  # a fallback with nothing to fall back from is ignored
                groups[-1].append(_split(line[3:]))
        elif line.startswith("@@"):
            decorated = True
            groups.append([_split(line[2:])])
        elif line:
            body_start = index
            break
    if not decorated:
        return Decorated(Decorators(), content.strip())
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for group in groups:
        problems = []
        for name, value in group:
            parser = _PARSERS.get(name)
            if parser is None:
                problems.append(f"@@{name} is not supported")
                continue
            try:
                parsed = parser(value)
            except _Invalid as exc:
                problems.append(f"@@{name}: {exc}")
                continue
            values.setdefault(name, parsed)  # the first of a name counts
            break
        else:
            warnings.append("; ".join(problems) + " (ignored)")
    text = "\n".join(lines[body_start:]).strip()
    decorators = replace(Decorators(), **{k: v for k, v in values.items() if k in _DEFAULTS})
    return Decorated(decorators, text, tuple(warnings))


def _split(line: str) -> tuple[str, str]:
    parts = line.split(None, 1)
    if not parts:
        return "", ""
    return parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""
