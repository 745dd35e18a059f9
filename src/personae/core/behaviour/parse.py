"""The ``behaviour`` section of a character file, as plain data, into a ``BehaviourSpec``.

Shape problems (a missing key, a list where a mapping belongs, bad syntax in an expression)
are found here; the checks that need the whole spec are in ``validate.py``. Either way every
problem is collected and ``BehaviourInvalid`` lists them all. The syntax is in
docs/behaviour.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from personae.core.behaviour.expressions import (
    BOOL,
    FLOAT,
    INT,
    STR,
    Expression,
    ExpressionError,
    Literal,
    Type,
    Value,
    enum,
    parse,
)
from personae.core.behaviour.spec import (
    RESERVED,
    BehaviourSpec,
    Effect,
    Greet,
    Increment,
    Instruction,
    SetVariable,
    SkillTrigger,
    State,
    Transition,
    Variable,
)
from personae.core.behaviour.validate import (
    BehaviourInvalid,
    Locate,
    Path,
    Problems,
    check_spec,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_SHORT = re.compile(
    r"^\s*(?P<type>int|float|bool|str|enum)\s*"
    r"(?:\((?P<values>[^)]*)\))?\s*"
    r"(?:(?P<low>-?[0-9]+(?:\.[0-9]+)?)?\s*\.\.\s*(?P<high>-?[0-9]+(?:\.[0-9]+)?)?)?\s*"
    r"(?:=\s*(?P<default>.*?))?\s*$"
)
_TYPES = {"int": INT, "float": FLOAT, "bool": BOOL, "str": STR}
_TOP = {"variables", "states", "initial", "transitions"}
_TRANSITION = {"from", "to", "when", "do"}
_EFFECTS = {"set", "increment", "decrement", "instruction", "skill", "greet"}
ANY_STATE = "*"


def parse_behaviour(
    raw: object,
    *,
    source: str,
    prefix: str = "behaviour",
    locate: Locate | None = None,
    duplicates: Iterable[Path] = (),
    greetings: int = 0,
    skills: Iterable[str] = (),
) -> BehaviourSpec:
    """The spec, or ``BehaviourInvalid`` with every problem. ``locate`` gives lines for paths
    and ``duplicates`` the keys a YAML file repeats (its loader keeps only the last)."""
    problems = Problems(source, prefix, locate or (lambda _: None))
    for path in duplicates:
        problems.at(path, f"{path[-1]!r} is given twice")
    spec = _Parser(problems).spec(raw)
    if spec is not None:
        check_spec(spec, problems, greetings=greetings, skills=skills)
    if problems.errors:
        raise BehaviourInvalid(problems.errors)
    assert spec is not None
    return spec


class _Parser:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.enums: dict[str, tuple[str, ...]] = {}  # for ``set: {mood: happy}``

    def spec(self, raw: object) -> BehaviourSpec | None:
        data = self._mapping(raw, (), "a mapping with 'states' (and 'variables', 'transitions')")
        if data is None:
            return None
        self._unknown_keys(data, (), _TOP)
        variables = self._variables(data.get("variables"))
        states = self._states(data.get("states"))
        if not states:
            return None
        initial = data.get("initial", states[0].name)
        if not isinstance(initial, str):
            self.problems.at(("initial",), "expected the name of a state")
            initial = states[0].name
        transitions = self._transitions(data.get("transitions"))
        return BehaviourSpec(tuple(variables), tuple(states), initial, tuple(transitions))

    # --- variables ---------------------------------------------------------------------------

    def _variables(self, raw: object) -> list[Variable]:
        if raw is None:
            return []
        data = self._mapping(raw, ("variables",), "a mapping of variable names to types")
        found: list[Variable] = []
        for name, declared in (data or {}).items():
            path: Path = ("variables", name)
            if not self._good_name(name, path):
                continue
            variable = self._variable(name, declared, path)
            if variable is not None:
                found.append(variable)
                if variable.type.kind == "enum":
                    self.enums[name] = variable.type.values
        return found

    def _good_name(self, name: object, path: Path) -> bool:
        if not isinstance(name, str) or not _NAME.match(name) or name in _KEYWORDS:
            self.problems.at(path, f"{name!r} is not a usable name (letters, digits, '_')")
            return False
        if name in RESERVED:
            self.problems.at(path, f"{name!r} is given twice: it is a built-in name")
            return False
        return True

    def _variable(self, name: str, declared: object, path: Path) -> Variable | None:
        fields = self._declaration(declared, path)
        if fields is None:
            return None
        kind = fields.get("type")
        if kind not in (*_TYPES, "enum"):
            self.problems.at(path, f"type {kind!r}: use int, float, bool, str or enum")
            return None
        if kind == "enum":
            values = fields.get("values")
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, str) and v for v in values)
            ):
                self.problems.at(path, "an enum needs 'values': a list of names")
                return None
            if len(set(values)) != len(values):
                self.problems.at(path, "an enum's values must differ")
                return None
            type_ = enum(values)
        else:
            type_ = _TYPES[str(kind)]
        low, high = fields.get("min"), fields.get("max")
        if (low is not None or high is not None) and not type_.numeric:
            self.problems.at(path, f"a {type_} has no range")
            return None
        for bound in (low, high):
            if bound is not None and (
                not isinstance(bound, int | float) or isinstance(bound, bool)
            ):
                self.problems.at(path, f"range bound {bound!r} is not a number")
                return None
        if type_ == INT and any(isinstance(b, float) for b in (low, high)):
            self.problems.at(path, "an int's range bounds must be whole numbers")
            return None
        if low is not None and high is not None and low > high:
            self.problems.at(path, f"empty range {low}..{high}")
            return None
        default = fields.get("default", _zero(type_, low))
        variable = Variable(name, type_, default, low, high, self.problems.where(path))
        if not variable.accepts(default) or (type_ == INT and isinstance(default, float)):
            self.problems.at(path, f"default {default!r} is not {type_}")
            return None
        if variable.fit(default) != default:
            self.problems.at(path, f"default {default!r} is outside the range {low}..{high}")
            return None
        return variable

    def _declaration(self, declared: object, path: Path) -> dict[str, Any] | None:
        """``{type: int, min: 0, max: 100, default: 30}`` or ``int 0..100 = 30``."""
        if isinstance(declared, Mapping):
            self._unknown_keys(declared, path, {"type", "values", "min", "max", "default"})
            return dict(declared)
        match = _SHORT.match(declared) if isinstance(declared, str) else None
        if match is None:
            self.problems.at(
                path, "expected a type such as 'int 0..100 = 30', 'enum(calm, cross)' or a mapping"
            )
            return None
        fields: dict[str, Any] = {"type": match["type"]}
        try:
            if match["values"] is not None:
                fields["values"] = [v.strip() for v in match["values"].split(",") if v.strip()]
            for key in ("low", "high"):
                if match[key] is not None:
                    fields["min" if key == "low" else "max"] = _number(match[key])
            if match["default"]:
                fields["default"] = _short_default(match["default"], match["type"])
        except ValueError as exc:
            self.problems.at(path, str(exc))
            return None
        return fields

    # --- states ------------------------------------------------------------------------------

    def _states(self, raw: object) -> list[State]:
        data = self._mapping(raw, ("states",), "a mapping of state names (at least one)")
        if not data:
            if data is not None:
                self.problems.at(("states",), "declare at least one state")
            return []
        found: list[State] = []
        for name, body in data.items():
            path: Path = ("states", name)
            if not isinstance(name, str) or not name.strip():
                self.problems.at(path, f"{name!r} is not a state name")
                continue
            if body is not None and not isinstance(body, str | Mapping):
                self.problems.at(path, "expected an instruction or a mapping with 'instruction'")
                continue
            instruction = body.get("instruction") if isinstance(body, Mapping) else body
            if isinstance(body, Mapping):
                self._unknown_keys(body, path, {"instruction"})
            if instruction is not None and not isinstance(instruction, str):
                self.problems.at((*path, "instruction"), "expected text")
                instruction = None
            found.append(State(name, instruction or None, self.problems.where(path)))
        return found

    # --- transitions -------------------------------------------------------------------------

    def _transitions(self, raw: object) -> list[Transition]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.at(("transitions",), "expected a list of transitions")
            return []
        found: list[Transition] = []
        for index, item in enumerate(raw):
            path: Path = ("transitions", index)
            data = self._mapping(item, path, "a mapping with 'from', 'to', 'when', 'do'")
            if data is None:
                continue
            self._unknown_keys(data, path, _TRANSITION)
            sources = self._sources(data.get("from", ANY_STATE), (*path, "from"))
            target = data.get("to")
            if target is not None and not isinstance(target, str):
                self.problems.at((*path, "to"), "expected the name of a state")
                continue
            guard = None
            if "when" in data:
                guard = self._expression(data["when"], (*path, "when"))
                if guard is None:
                    continue
            effects = self._effects(data.get("do"), (*path, "do"))
            where = self.problems.where(path)
            parts = {key: self.problems.where((*path, key)) for key in ("from", "to", "when")}
            found.append(Transition(sources, target, guard, tuple(effects), where, parts))
        return found

    def _sources(self, raw: object, path: Path) -> tuple[str, ...]:
        if raw == ANY_STATE:
            return ()
        listed = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(s, str) for s in listed)
        ):
            self.problems.at(path, "expected a state, a list of states or '*'")
            return ()
        return tuple(listed)

    def _effects(self, raw: object, path: Path) -> list[Effect]:
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else [raw]
        found: list[Effect] = []
        for index, item in enumerate(items):
            where: Path = (*path, index) if isinstance(raw, list) else path
            if not isinstance(item, Mapping) or len(item) != 1:
                self.problems.at(where, f"an effect is one of {', '.join(sorted(_EFFECTS))}: value")
                continue
            ((kind, value),) = item.items()
            if kind not in _EFFECTS:
                self.problems.at(
                    where, f"unknown effect {kind!r} (known: {', '.join(sorted(_EFFECTS))})"
                )
                continue
            found.extend(self._effect(str(kind), value, (*where, kind)))
        return found

    def _effect(self, kind: str, value: object, path: Path) -> list[Effect]:
        where = self.problems.where(path)
        if kind == "instruction":
            if not isinstance(value, str) or not value.strip():
                self.problems.at(path, "expected the text to add to the prompt")
                return []
            return [Instruction(value, where)]
        if kind == "greet":
            if not isinstance(value, int) or isinstance(value, bool):
                self.problems.at(path, "expected the number of a greeting (0 is the first)")
                return []
            return [Greet(value, where)]
        if kind == "skill":
            return self._skill(value, path)
        targets = self._mapping(value, path, "a mapping of variable names to values")
        effects: list[Effect] = []
        for name, given in (targets or {}).items():
            at: Path = (*path, name)
            expression = self._expression(given, at, self.enums.get(str(name), ()))
            if expression is None:
                continue
            if kind == "set":
                effects.append(SetVariable(str(name), expression, self.problems.where(at)))
            else:
                sign = 1 if kind == "increment" else -1
                effects.append(Increment(str(name), expression, sign, self.problems.where(at)))
        return effects

    def _skill(self, value: object, path: Path) -> list[Effect]:
        if isinstance(value, str):
            value = {"name": value}
        data = self._mapping(value, path, "a skill name, or a mapping with 'name' and 'args'")
        if data is None:
            return []
        self._unknown_keys(data, path, {"name", "args"})
        name, args = data.get("name"), data.get("args", {})
        if not isinstance(name, str) or not isinstance(args, Mapping):
            self.problems.at(path, "expected 'name' (text) and 'args' (a mapping)")
            return []
        return [SkillTrigger(name, dict(args), self.problems.where(path))]

    # --- shared ------------------------------------------------------------------------------

    def _expression(
        self, raw: object, path: Path, enum_values: tuple[str, ...] = ()
    ) -> Expression | None:
        if isinstance(raw, bool | int | float):
            shown = str(raw).lower() if isinstance(raw, bool) else str(raw)
            return Expression(shown, Literal(raw, 1))
        if not isinstance(raw, str):
            self.problems.at(path, f"expected an expression, not {type(raw).__name__}")
            return None
        if raw in enum_values:  # ``set: {mood: happy}``: a value of the enum, unquoted
            return Expression(raw, Literal(raw, 1))
        try:
            return parse(raw)
        except ExpressionError as exc:
            self.problems.at(path, f"{exc} in {raw!r}")
            return None

    def _mapping(self, raw: object, path: Path, expected: str) -> Mapping[Any, Any] | None:
        if isinstance(raw, Mapping):
            return raw
        self.problems.at(path, f"expected {expected}")
        return None

    def _unknown_keys(self, data: Mapping[Any, Any], path: Path, known: set[str]) -> None:
        for key in data:
            if key not in known:
                self.problems.at(
                    (*path, key), f"unknown key {key!r} (known: {', '.join(sorted(known))})"
                )


def _zero(type_: Type, low: object) -> Value:
    if type_.kind == "enum":
        return type_.values[0]
    if type_ == BOOL:
        return False
    if type_ == STR:
        return ""
    zero: int | float = 0 if type_ == INT else 0.0
    return max(zero, low) if isinstance(low, int | float) else zero


def _number(text: str) -> int | float:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _short_default(text: str, kind: str) -> Value:
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"default {text!r} is not true or false")
        return text == "true"
    if kind in ("int", "float"):
        return _number(text)
    return text.strip("\"'")
