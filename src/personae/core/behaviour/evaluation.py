"""Evaluating a checked expression: one walk over its tree, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from personae.core.behaviour.expressions import (
    MAX_TEXT,
    Binary,
    Call,
    Expression,
    ListOf,
    Literal,
    Name,
    Node,
    Unary,
    Value,
)
from personae.core.behaviour.functions import FUNCTIONS, as_number, bounded


def evaluate(expression: Expression, scope: Mapping[str, Value]) -> Value:
    """The value of a checked expression; ``scope`` holds every name it uses (and ``text``,
    for ``mentions``). Never raises for a checked expression and a scope of the right types."""
    return _evaluate(expression.tree, scope)


def _evaluate(node: Node, scope: Mapping[str, Value]) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return scope[node.name]
    if isinstance(node, Unary):
        operand = _evaluate(node.operand, scope)
        return (not operand) if node.op == "not" else bounded(-as_number(operand))
    if isinstance(node, Call):
        function = FUNCTIONS[node.function]
        return function.run([_evaluate(arg, scope) for arg in node.args], scope)
    if isinstance(node, ListOf):
        raise TypeError("a list is only a value on the right of 'in'")  # the checker's job
    return _binary(node, scope)


def _binary(node: Binary, scope: Mapping[str, Value]) -> Value:
    op = node.op
    if op == "and":
        return bool(_evaluate(node.left, scope)) and bool(_evaluate(node.right, scope))
    if op == "or":
        return bool(_evaluate(node.left, scope)) or bool(_evaluate(node.right, scope))
    left = _evaluate(node.left, scope)
    if op in ("in", "not in"):
        if isinstance(node.right, ListOf):
            found = any(left == _evaluate(item, scope) for item in node.right.items)
        else:
            found = str(left) in str(_evaluate(node.right, scope))
        return found if op == "in" else not found
    right = _evaluate(node.right, scope)
    return _OPERATORS[op](left, right)


def _arith(
    apply: Callable[[int | float, int | float], int | float],
) -> Callable[[Value, Value], Value]:
    return lambda a, b: bounded(apply(as_number(a), as_number(b)))


def _plus(a: Value, b: Value) -> Value:
    if isinstance(a, str) and isinstance(b, str):
        return (a + b)[:MAX_TEXT]
    return bounded(as_number(a) + as_number(b))


_OPERATORS: Mapping[str, Callable[[Value, Value], Value]] = {
    "+": _plus,
    "-": _arith(lambda x, y: x - y),
    "*": _arith(lambda x, y: x * y),
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}
