"""Stepping a behaviour machine: one call per turn, deterministic, no I/O.

    step(spec, state, signals) -> StepResult(new state, changes, instructions, skills, greeting)

The turn counter moves; then the first transition (in declaration order) that leaves the
current state and whose guard holds fires, and it alone: its effects run in order, each
seeing the variables as the previous one left them, and the machine moves to its target.
The guards all see the state as the turn found it. The instructions are the (new) state's
own, then the transition's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from personae.core.behaviour.evaluation import evaluate
from personae.core.behaviour.expressions import Value
from personae.core.behaviour.signals import TurnSignals
from personae.core.behaviour.spec import (
    BehaviourSpec,
    Greet,
    Increment,
    Instruction,
    SetVariable,
    SkillTrigger,
)

STATE = "state"  # the name a change of the machine's state goes by in ``changes``


@dataclass(frozen=True, slots=True)
class MachineState:
    node: str  # the current state's name
    variables: Mapping[str, Value]
    turn: int = 0  # turns stepped so far
    entered_turn: int = 0  # the turn on which the machine entered ``node``

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.node,
            "variables": dict(self.variables),
            "turn": self.turn,
            "entered_turn": self.entered_turn,
        }


@dataclass(frozen=True, slots=True)
class Change:
    name: str  # a variable, or ``STATE``
    old: Value
    new: Value


@dataclass(frozen=True, slots=True)
class StepResult:
    state: MachineState
    changes: tuple[Change, ...] = ()
    fired: int | None = None  # the index of the transition that fired
    instructions: tuple[str, ...] = ()
    skills: tuple[SkillTrigger, ...] = ()
    greeting: int | None = None  # greet again with this greeting


def initial_state(spec: BehaviourSpec) -> MachineState:
    return MachineState(spec.initial, {v.name: v.default for v in spec.variables})


def restore(
    spec: BehaviourSpec, stored: Mapping[str, Any] | None
) -> tuple[MachineState, list[str]]:
    """A stored state made to fit ``spec``, which may have changed since it was stored (hot
    reload): an unknown state goes back to the initial one, unknown variables go, missing or
    ill-typed ones get their defaults, numbers are clamped. Returns what had to be fixed."""
    if stored is None:
        return initial_state(spec), []
    fixed: list[str] = []
    node = stored.get("state")
    if node not in spec.state_names:
        fixed.append(f"state {node!r} is gone: back to {spec.initial!r}")
        node, entered = spec.initial, None
    else:
        entered = stored.get("entered_turn")
    raw_vars = stored.get("variables")
    raw = raw_vars if isinstance(raw_vars, Mapping) else {}
    variables: dict[str, Value] = {}
    for variable in spec.variables:
        value = raw.get(variable.name, variable.default)
        if not variable.accepts(value):
            fixed.append(f"{variable.name}: {value!r} does not fit; reset to {variable.default!r}")
            value = variable.default
        variables[variable.name] = variable.fit(value)
    turn = _count(stored.get("turn"))
    return MachineState(
        str(node), variables, turn, turn if entered is None else _count(entered)
    ), fixed


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def scope_of(state: MachineState, signals: TurnSignals, turn: int) -> dict[str, Value]:
    return {
        **state.variables,
        "text": signals.text,
        "intent": signals.intent,
        "skill": signals.skill,
        "sentiment": signals.sentiment,
        "turn": turn,
        "turns_in_state": turn - state.entered_turn,
        "state": state.node,
    }


def step(spec: BehaviourSpec, state: MachineState, signals: TurnSignals) -> StepResult:
    turn = state.turn + 1
    scope = scope_of(state, signals, turn)
    for index, transition in enumerate(spec.transitions):
        if not transition.leaves(state.node):
            continue
        if transition.guard is not None and evaluate(transition.guard, scope) is not True:
            continue
        return _fire(spec, state, scope, turn, index)
    moved = MachineState(state.node, state.variables, turn, state.entered_turn)
    return StepResult(moved, instructions=_own(spec, state.node))


def _fire(
    spec: BehaviourSpec, state: MachineState, scope: dict[str, Value], turn: int, index: int
) -> StepResult:
    transition = spec.transitions[index]
    variables = dict(state.variables)
    instructions: list[str] = []
    skills: list[SkillTrigger] = []
    greeting: int | None = None
    for effect in transition.effects:
        if isinstance(effect, SetVariable | Increment):
            variable = spec.variable(effect.name)
            if isinstance(effect, SetVariable):
                value = evaluate(effect.value, scope)
            else:
                amount = evaluate(effect.amount, scope)
                current = variables[effect.name]
                assert isinstance(amount, int | float)
                assert isinstance(current, int | float)
                value = current + effect.sign * amount
            variables[effect.name] = scope[effect.name] = variable.fit(value)
        elif isinstance(effect, Instruction):
            instructions.append(effect.text)
        elif isinstance(effect, SkillTrigger):
            skills.append(effect)
        else:
            assert isinstance(effect, Greet)
            greeting = effect.index
    target = transition.target
    entered = turn if target is not None and target != state.node else state.entered_turn
    node = state.node if target is None else target
    changes = [
        Change(name, state.variables[name], variables[name])
        for name in variables
        if variables[name] != state.variables[name]
    ]
    if node != state.node:
        changes.insert(0, Change(STATE, state.node, node))
    return StepResult(
        MachineState(node, variables, turn, entered),
        tuple(changes),
        fired=index,
        instructions=(*_own(spec, node), *instructions),
        skills=tuple(skills),
        greeting=greeting,
    )


def _own(spec: BehaviourSpec, node: str) -> tuple[str, ...]:
    instruction = spec.state(node).instruction
    return (instruction,) if instruction else ()
