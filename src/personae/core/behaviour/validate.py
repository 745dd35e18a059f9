"""Checks on a parsed behaviour that need the whole of it: names, types, ranges, targets and
reachability. Each problem is a ``BehaviourError`` naming the file, the line (when the file
has lines) and the place in the section; all of them are reported at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from personae.core.behaviour.checking import check
from personae.core.behaviour.expressions import (
    BOOL,
    FLOAT,
    INT,
    Expression,
    ExpressionError,
    Literal,
    Name,
    Type,
    Unary,
)
from personae.core.behaviour.spec import (
    BehaviourSpec,
    Greet,
    Increment,
    SetVariable,
    SkillTrigger,
    Variable,
    Where,
    names,
)

Path = tuple[str | int, ...]
Locate = Callable[[Path], int | None]  # the 1-based line a path of the section starts on


@dataclass(frozen=True, slots=True)
class BehaviourError:
    source: str
    line: int | None
    path: str  # behaviour.transitions[2].when
    message: str

    def __str__(self) -> str:
        return (
            f"{self.source}:{self.line}: {self.brief}"
            if self.line
            else f"{self.source}: {self.brief}"
        )

    @property
    def brief(self) -> str:
        """Without the file: ``line 12: behaviour.states.calm: ...``."""
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.message}"


class BehaviourInvalid(ValueError):
    """A behaviour section with problems; ``errors`` lists every one."""

    def __init__(self, errors: list[BehaviourError]) -> None:
        super().__init__("; ".join(e.brief for e in errors))
        self.errors = errors


@dataclass(slots=True)
class Problems:
    """Collects errors for one section: paths are made readable and given their lines."""

    source: str
    prefix: str = "behaviour"  # where the section is in the file
    locate: Locate = lambda _: None
    errors: list[BehaviourError] = field(default_factory=list)

    def where(self, path: Path) -> Where:
        text = self.prefix
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return Where(text.lstrip(".") or "(the section)", self.locate(path))

    def add(self, where: Where, message: str) -> None:
        self.errors.append(BehaviourError(self.source, where.line, where.path, message))

    def at(self, path: Path, message: str) -> None:
        self.add(self.where(path), message)


def check_spec(
    spec: BehaviourSpec, problems: Problems, *, greetings: int, skills: Iterable[str]
) -> None:
    """Every problem of a structurally sound spec, added to ``problems``."""
    known = spec.state_names
    scope = names(spec.variables, known)
    listed = set(skills)
    if spec.initial not in known:
        problems.add(problems.where(("initial",)), f"unknown state {spec.initial!r}{_among(known)}")
    for transition in spec.transitions:
        for source in transition.sources:
            if source not in known:
                problems.add(transition.place("from"), f"unknown state {source!r}{_among(known)}")
        if transition.target is not None and transition.target not in known:
            problems.add(
                transition.place("to"), f"unknown state {transition.target!r}{_among(known)}"
            )
        if transition.guard is not None:
            _expect(problems, transition.place("when"), "when", transition.guard, scope, {BOOL})
        for effect in transition.effects:
            if isinstance(effect, SetVariable | Increment):
                _check_assignment(problems, spec, effect, scope)
            elif isinstance(effect, Greet) and not 0 <= effect.index < greetings:
                problems.add(
                    effect.where,
                    f"greeting {effect.index} does not exist (the character has {greetings}; "
                    "the first is 0)",
                )
            elif isinstance(effect, SkillTrigger) and effect.skill not in listed:
                problems.add(
                    effect.where,
                    f"skill {effect.skill!r} is not in the character's skills{_among(listed)}",
                )
    _check_reachable(spec, problems)


def _check_assignment(
    problems: Problems,
    spec: BehaviourSpec,
    effect: SetVariable | Increment,
    scope: dict[str, Type],
) -> None:
    declared = {v.name for v in spec.variables}
    if effect.name not in declared:
        message = f"unknown variable {effect.name!r}{_among(declared)}"
        if effect.name in scope:
            message = f"{effect.name!r} is read-only (it describes the turn, not the character)"
        problems.add(effect.where, message)
        return
    variable = spec.variable(effect.name)
    if isinstance(effect, SetVariable) and _unknown_enum_value(effect.value, variable, scope):
        shown = ", ".join(variable.type.values)
        problems.add(
            effect.where, f"{effect.value.text!r} is not a value of {variable.name} ({shown})"
        )
        return
    if isinstance(effect, Increment):
        if not variable.type.numeric:
            problems.add(effect.where, f"{variable.name} is {variable.type}: only numbers count up")
            return
        wanted = {INT} if variable.type == INT else {INT, FLOAT}
        _expect(problems, effect.where, variable.name, effect.amount, scope, wanted)
        return
    found = _type_of(problems, effect.where, effect.value, scope)
    if found is None:
        return
    problem = _assignable(variable, found, effect.value)
    if problem:
        problems.add(effect.where, problem)


def _assignable(variable: Variable, found: Type, value: Expression) -> str | None:
    """Why ``value`` (of type ``found``) cannot go into ``variable``, or None."""
    wanted = variable.type
    literal = _literal(value)
    if wanted.kind == "enum":
        if isinstance(literal, str):
            if literal in wanted.values:
                return None
            return f"{literal!r} is not a value of {variable.name} ({', '.join(wanted.values)})"
        if found.kind == "enum" and set(found.values) <= set(wanted.values):
            return None
        return f"{variable.name} is {wanted}; {value} may give something else"
    fits = (
        (wanted == FLOAT and found.numeric)
        or (wanted.kind == "str" and found.textual)
        or wanted == found
    )
    if not fits:
        hint = " (round(...) makes it an int)" if wanted == INT and found == FLOAT else ""
        return f"{variable.name} is {wanted}, not {found}{hint}"
    if isinstance(literal, int | float) and not isinstance(literal, bool):
        low, high = variable.minimum, variable.maximum
        if (low is not None and literal < low) or (high is not None and literal > high):
            return f"{literal} is outside {variable.name}'s range {_range(variable)}"
    return None


def _unknown_enum_value(value: Expression, variable: Variable, scope: dict[str, Type]) -> bool:
    # ``set: {mood: furious}``: meant as a value of the enum, not as a variable.
    tree = value.tree
    return variable.type.kind == "enum" and isinstance(tree, Name) and tree.name not in scope


def _literal(value: Expression) -> object:
    tree = value.tree
    if isinstance(tree, Unary) and tree.op == "-" and isinstance(tree.operand, Literal):
        return -tree.operand.value if isinstance(tree.operand.value, int | float) else None
    return tree.value if isinstance(tree, Literal) else None


def _range(variable: Variable) -> str:
    low = "" if variable.minimum is None else variable.minimum
    high = "" if variable.maximum is None else variable.maximum
    return f"{low}..{high}"


def _type_of(
    problems: Problems, where: Where, expression: Expression, scope: dict[str, Type]
) -> Type | None:
    try:
        return check(expression, scope)
    except ExpressionError as exc:
        problems.add(where, f"{exc} in {expression.text!r}")
        return None


def _expect(
    problems: Problems,
    where: Where,
    what: str,
    expression: Expression,
    scope: dict[str, Type],
    wanted: set[Type],
) -> None:
    found = _type_of(problems, where, expression, scope)
    if found is not None and found not in wanted:
        need = " or ".join(sorted(str(t) for t in wanted))
        problems.add(where, f"{what}: {expression.text!r} gives {found}, not {need}")


def _check_reachable(spec: BehaviourSpec, problems: Problems) -> None:
    reached = {spec.initial}
    frontier = [spec.initial]
    while frontier:
        node = frontier.pop()
        for transition in spec.transitions:
            target = transition.target
            if target is not None and target not in reached and transition.leaves(node):
                reached.add(target)
                frontier.append(target)
    if spec.initial not in spec.state_names:
        return  # reported already; everything would look unreachable
    for state in spec.states:
        if state.name not in reached:
            problems.add(
                state.where,
                f"state {state.name!r} is unreachable: no transition leads to it from "
                f"{spec.initial!r}",
            )


def _among(known: Iterable[str]) -> str:
    listed = sorted(known)
    return f" (known: {', '.join(listed)})" if listed else " (none are declared)"
