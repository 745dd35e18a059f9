"""Type checking an expression against the names it may use, before it ever runs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from personae.core.behaviour.expressions import (
    BOOL,
    FLOAT,
    INT,
    STR,
    Binary,
    Call,
    Expression,
    ExpressionError,
    ListOf,
    Literal,
    Name,
    Node,
    Type,
    Unary,
    Value,
)
from personae.core.behaviour.functions import FUNCTIONS


def check(expression: Expression, names: Mapping[str, Type]) -> Type:
    """The type of ``expression`` given the types of the names it may use; raises
    ``ExpressionError`` for an unknown name or function, or a type that does not fit."""
    return _Checker(names).type_of(expression.tree)


class _Checker:
    def __init__(self, names: Mapping[str, Type]) -> None:
        self._names = names

    def type_of(self, node: Node) -> Type:
        if isinstance(node, Literal):
            return _literal_type(node.value)
        if isinstance(node, Name):
            return self._name(node)
        if isinstance(node, ListOf):
            return self._list(node)
        if isinstance(node, Unary):
            operand = self.type_of(node.operand)
            wanted = BOOL if node.op == "not" else None
            if (wanted and operand != BOOL) or (not wanted and not operand.numeric):
                need = "true or false" if wanted else "a number"
                raise ExpressionError(f"'{node.op}' needs {need}, not {operand}", node.column)
            return operand
        if isinstance(node, Call):
            return self._call(node)
        return self._binary(node)

    def _name(self, node: Name) -> Type:
        found = self._names.get(node.name)
        if found is None:
            close = difflib.get_close_matches(node.name, list(self._names), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ExpressionError(f"unknown variable '{node.name}'{hint}", node.column)
        return found

    def _list(self, node: ListOf) -> Type:
        kinds = [self.type_of(item) for item in node.items]
        if any(k.kind == "list" for k in kinds):
            raise ExpressionError("a list holds plain values, not lists", node.column)
        if not kinds:
            return Type("list")
        if all(k.numeric for k in kinds):
            item = INT if all(k.kind == "int" for k in kinds) else FLOAT
        elif all(k.textual for k in kinds):
            item = STR
        elif all(k == BOOL for k in kinds):
            item = BOOL
        else:
            raise ExpressionError(
                "a list's items must all be numbers, all text or all true/false", node.column
            )
        return Type("list", item=item)

    def _call(self, node: Call) -> Type:
        function = FUNCTIONS.get(node.function)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(
                f"unknown function '{node.function}' (known: {known})", node.column
            )
        result = function.typed([self.type_of(arg) for arg in node.args])
        if isinstance(result, str):
            raise ExpressionError(f"{function.signature}: {result}", node.column)
        return result

    def _binary(self, node: Binary) -> Type:
        left, right = self.type_of(node.left), self.type_of(node.right)
        op = node.op
        if op in ("and", "or"):
            if left != BOOL or right != BOOL:
                bad = left if left != BOOL else right
                raise ExpressionError(f"'{op}' joins true/false values, not {bad}", node.column)
            return BOOL
        if op in ("+", "-", "*"):
            if left.numeric and right.numeric:
                return INT if left.kind == right.kind == "int" else FLOAT
            if op == "+" and left.textual and right.textual:
                return STR
            raise ExpressionError(f"cannot use '{op}' on {left} and {right}", node.column)
        if op in ("in", "not in"):
            return self._membership(node, left, right)
        self._comparable(node, left, right)
        return BOOL

    def _comparable(self, node: Binary, left: Type, right: Type) -> None:
        if node.op in ("<", "<=", ">", ">="):
            if (left.numeric and right.numeric) or (left.kind == right.kind == "str"):
                return
            raise ExpressionError(f"cannot order {left} and {right} with '{node.op}'", node.column)
        if (left.numeric and right.numeric) or left == right == BOOL:
            return
        if left.textual and right.textual:
            self._enum_member(node.left, left, node.right)
            self._enum_member(node.right, right, node.left)
            return
        raise ExpressionError(f"cannot compare {left} with {right}", node.column)

    def _membership(self, node: Binary, left: Type, right: Type) -> Type:
        if right.kind == "str" or right.kind == "enum":
            if not left.textual:
                raise ExpressionError(
                    f"'{node.op}' text needs text on its left, not {left}", node.column
                )
            return BOOL
        if right.kind != "list":
            raise ExpressionError(
                f"'{node.op}' needs a list or text on its right, not {right}", node.column
            )
        item = right.item
        fits = item is None or (
            (item.numeric and left.numeric) or (item.textual and left.textual) or item == left
        )
        if not fits:
            raise ExpressionError(f"{left} is never in {right}", node.column)
        if left.kind == "enum" and isinstance(node.right, ListOf):
            for element in node.right.items:
                self._enum_member(node.left, left, element)
        return BOOL

    @staticmethod
    def _enum_member(side: Node, side_type: Type, other: Node) -> None:
        if (
            side_type.kind == "enum"
            and isinstance(other, Literal)
            and isinstance(other.value, str)
            and other.value not in side_type.values
        ):
            what = side.name if isinstance(side, Name) else "it"
            raise ExpressionError(
                f"{other.value!r} is not a value of {what} ({', '.join(side_type.values)})",
                other.column,
            )


def _literal_type(value: Value) -> Type:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    return STR
