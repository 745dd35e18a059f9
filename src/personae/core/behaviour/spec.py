"""A character's behaviour, parsed: typed variables, states, and transitions with guards and
effects. Built by ``parse.py`` (which also checks it); stepped by ``machine.py``.

Every part remembers where it was written (``Where``), so that errors found later, and the
``state.changed`` events, can name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from personae.core.behaviour.expressions import (
    BOOL,
    FLOAT,
    INT,
    STR,
    Expression,
    Type,
    Value,
    enum,
)
from personae.core.behaviour.signals import INTENTS

# Names every guard and effect may read besides the declared variables (see signals.py), and
# ``state``, the machine's state (an enum of the declared states).
BUILTINS: Mapping[str, Type] = {
    "text": STR,  # the user's message
    "intent": enum(INTENTS),
    "skill": STR,  # the skill a trigger named, or ""
    "sentiment": FLOAT,  # -1..1
    "turn": INT,  # this conversation's turns seen by the machine, counting this one
    "turns_in_state": INT,  # turns since the machine entered its state, counting this one
}


@dataclass(frozen=True, slots=True)
class Where:
    """``path`` in the character file (``behaviour.transitions[2].when``) and its line, when
    the file has lines (YAML; a card's JSON does not keep them)."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}" if self.line else self.path


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: Type  # INT, FLOAT, BOOL, STR or an enum
    default: Value
    minimum: int | float | None = None  # numbers only; values are clamped into the range
    maximum: int | float | None = None
    where: Where = Where("")

    def fit(self, value: Value) -> Value:
        """``value`` as this variable holds it: numbers clamped into the range, an int
        variable's float rounded."""
        if self.type.numeric and isinstance(value, int | float) and not isinstance(value, bool):
            number: int | float = round(value) if self.type == INT else float(value)
            if self.minimum is not None:
                number = max(number, self.minimum)
            if self.maximum is not None:
                number = min(number, self.maximum)
            return number
        return value

    def accepts(self, value: object) -> bool:
        """Whether a stored ``value`` is one this variable can hold (for state restored after
        the character changed)."""
        if self.type == BOOL:
            return isinstance(value, bool)
        if self.type.numeric:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.type.kind == "enum":
            return value in self.type.values
        return isinstance(value, str)


@dataclass(frozen=True, slots=True)
class State:
    name: str
    instruction: str | None = None  # always in the prompt while the machine is here
    where: Where = Where("")


@dataclass(frozen=True, slots=True)
class SetVariable:
    name: str
    value: Expression
    where: Where = Where("")


@dataclass(frozen=True, slots=True)
class Increment:
    """``increment`` (sign 1) or ``decrement`` (sign -1); the result is clamped."""

    name: str
    amount: Expression
    sign: int = 1
    where: Where = Where("")


@dataclass(frozen=True, slots=True)
class Instruction:
    """Text for the prompt this turn; ``{{char}}``/``{{user}}`` are expanded with it."""

    text: str
    where: Where = Where("")


@dataclass(frozen=True, slots=True)
class SkillTrigger:
    """Run a skill the character lists, with these arguments; its result goes in the prompt."""

    skill: str
    args: Mapping[str, Any]
    where: Where = Where("")


@dataclass(frozen=True, slots=True)
class Greet:
    """Greet again with the character's greeting number ``index`` (0: the first greeting)."""

    index: int
    where: Where = Where("")


Effect = SetVariable | Increment | Instruction | SkillTrigger | Greet


@dataclass(frozen=True, slots=True)
class Transition:
    """From any of ``sources`` (empty: from every state) to ``target`` (None: stay, without
    re-entering), when ``guard`` holds (None: always), doing ``effects`` in order."""

    sources: tuple[str, ...]
    target: str | None
    guard: Expression | None
    effects: tuple[Effect, ...]
    where: Where = Where("")
    parts: Mapping[str, Where] = field(default_factory=dict)  # where 'from', 'to', 'when' are

    def leaves(self, state: str) -> bool:
        return not self.sources or state in self.sources

    def place(self, key: str) -> Where:
        return self.parts.get(key, self.where)


@dataclass(frozen=True, slots=True)
class BehaviourSpec:
    variables: tuple[Variable, ...]
    states: tuple[State, ...]
    initial: str
    transitions: tuple[Transition, ...]

    def variable(self, name: str) -> Variable:
        return next(v for v in self.variables if v.name == name)

    def state(self, name: str) -> State:
        return next(s for s in self.states if s.name == name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)


def names(variables: tuple[Variable, ...], states: tuple[str, ...]) -> dict[str, Type]:
    """Every name an expression may read, with its type."""
    return {**BUILTINS, "state": enum(states), **{v.name: v.type for v in variables}}


RESERVED = frozenset((*BUILTINS, "state"))
