"""The behaviour section's expression language: small, typed, and safe by construction.

    guard      affinity >= 60 and mood != "hurt"
    keywords   mentions("cat", "kitten") or "?" in text
    arithmetic clamp(affinity + round(sentiment * 10), 0, 100)

Literals (``12``, ``0.5``, ``"text"`` or ``'text'``, ``true``/``false``), names, ``and or not``,
comparisons (``== != < <= > >=``, not chained), ``in``/``not in`` (a list literal, or a
substring of a string), ``+ - *`` and parentheses, and the functions in ``functions.py``.

This module is the syntax: types, the tree, tokens and the parser. An expression is parsed
once, when the character loads, into a tree of the node classes below, and type-checked
against the names it may use (``checking.py``). Evaluating a tree (``evaluation.py``) walks it
once: there are no loops, no attribute access and no calls beyond the whitelist, so an
expression cannot run for long or reach anything. Integers are kept within ``INT_LIMIT`` and
floats finite, so arithmetic cannot blow up either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Value = int | float | str | bool
MAX_LENGTH = 2000  # characters in one expression
MAX_DEPTH = 40  # nesting of parentheses, unary operators and calls while parsing
MAX_TREE_DEPTH = 100  # levels of the parsed tree (``a + b + ... + z`` is one level per '+')
MAX_TEXT = 4000  # characters of a string built with '+' (a variable must not double per turn)
INT_LIMIT = 2**53  # integers are clamped into -INT_LIMIT..INT_LIMIT (exact as floats too)


class ExpressionError(ValueError):
    """An expression that does not parse or does not type-check. ``column`` is 1-based,
    within the expression's text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.message = message
        self.column = column


# --- types -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Type:
    """``int``, ``float``, ``str``, ``bool``, ``enum`` (a str with known values) or ``list``."""

    kind: str
    values: tuple[str, ...] = ()  # an enum's values, in declaration order
    item: Type | None = None  # a list's items (None for an empty list)

    def __str__(self) -> str:
        if self.kind == "enum":
            return "one of " + ", ".join(self.values)
        if self.kind == "list":
            return f"a list of {self.item}" if self.item else "an empty list"
        return self.kind

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def textual(self) -> bool:
        return self.kind in ("str", "enum")


INT, FLOAT, STR, BOOL = Type("int"), Type("float"), Type("str"), Type("bool")


def enum(values: Sequence[str]) -> Type:
    return Type("enum", tuple(values))


# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Node, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not" or "-"
    operand: Node
    column: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # and or == != < <= > >= in "not in" + - *
    left: Node
    right: Node
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]
    column: int


Node = Literal | Name | ListOf | Unary | Binary | Call


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression and the text it came from."""

    text: str
    tree: Node

    def __str__(self) -> str:
        return self.text


# --- tokens ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>[0-9]+(?:\.[0-9]+)?)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|[<>+\-*(),\[\]])""",
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, name, op, keyword, end
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            if text[at] in "\"'":
                raise ExpressionError("a string is not closed on its line", at + 1)
            raise ExpressionError(f"unexpected character {text[at]!r}", at + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            word = match.group()
            if kind == "name" and word in _KEYWORDS:
                kind = "keyword"
            found.append(_Token(kind, word, at + 1))
        at = match.end()
    found.append(_Token("end", "", len(text) + 1))
    return found


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _ESCAPES:
                column = token.column + index + 1
                raise ExpressionError(f"unknown escape '\\{escaped}' in a string", column)
            out.append(_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


# --- parsing ---------------------------------------------------------------------------------


def parse(text: str) -> Expression:
    """Parse ``text`` or raise ``ExpressionError`` saying what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be text", 1)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if not text.strip():
        raise ExpressionError("the expression is empty", 1)
    parser = _Parser(_tokens(text))
    tree = parser.expression()
    if parser.peek.kind != "end":
        token = parser.peek
        raise ExpressionError(
            f"unexpected {_shown(token)} after a complete expression", token.column
        )
    if _depth(tree) > MAX_TREE_DEPTH:
        raise ExpressionError(f"more than {MAX_TREE_DEPTH} operators deep; split it up", 1)
    return Expression(text, tree)


def _depth(tree: Node) -> int:
    # Iterative: checking and evaluating recurse, so the depth is bounded before they run.
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children: tuple[Node, ...] = ()
        if isinstance(node, Unary):
            children = (node.operand,)
        elif isinstance(node, Binary):
            children = (node.left, node.right)
        elif isinstance(node, Call):
            children = node.args
        elif isinstance(node, ListOf):
            children = node.items
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _shown(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


class _Parser:
    """Recursive descent, lowest precedence first: or, and, not, comparison, + -, *, unary."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._at = 0
        self._depth = 0

    @property
    def peek(self) -> _Token:
        return self._tokens[self._at]

    def _take(self) -> _Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _accept(self, text: str) -> _Token | None:
        token = self.peek
        if token.kind in ("op", "keyword") and token.text == text:
            return self._take()
        return None

    def _expect(self, text: str, what: str) -> _Token:
        token = self._accept(text)
        if token is None:
            raise ExpressionError(f"expected {what}, found {_shown(self.peek)}", self.peek.column)
        return token

    def _nested(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} deep", self.peek.column)

    def expression(self) -> Node:
        self._nested()
        try:
            return self._or()
        finally:
            self._depth -= 1

    def _or(self) -> Node:
        left = self._and()
        while token := self._accept("or"):
            left = Binary("or", left, self._and(), token.column)
        return left

    def _and(self) -> Node:
        left = self._not()
        while token := self._accept("and"):
            left = Binary("and", left, self._not(), token.column)
        return left

    def _not(self) -> Node:
        if token := self._accept("not"):
            self._nested()
            try:
                return Unary("not", self._not(), token.column)
            finally:
                self._depth -= 1
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._sum()
        op = self._comparison_op()
        if op is None:
            return left
        right = self._sum()
        if self._comparison_op(peek_only=True):
            raise ExpressionError(
                "comparisons cannot be chained; join them with 'and'", self.peek.column
            )
        return Binary(op[0], left, right, op[1])

    def _comparison_op(self, *, peek_only: bool = False) -> tuple[str, int] | None:
        token = self.peek
        if token.kind == "keyword" and token.text == "not":
            following = self._tokens[self._at + 1]
            if following.kind == "keyword" and following.text == "in":
                if not peek_only:
                    self._at += 2
                return "not in", token.column
            return None
        if token.text in _COMPARISONS and token.kind in ("op", "keyword"):
            if not peek_only:
                self._take()
            return token.text, token.column
        return None

    def _sum(self) -> Node:
        left = self._product()
        while (token := self._accept("+")) or (token := self._accept("-")):
            left = Binary(token.text, left, self._product(), token.column)
        return left

    def _product(self) -> Node:
        left = self._unary()
        while token := self._accept("*"):
            left = Binary("*", left, self._unary(), token.column)
        return left

    def _unary(self) -> Node:
        if token := self._accept("-"):
            self._nested()
            try:
                return Unary("-", self._unary(), token.column)
            finally:
                self._depth -= 1
        return self._primary()

    def _primary(self) -> Node:
        token = self._take()
        if token.kind == "number":
            return Literal(_number(token), token.column)
        if token.kind == "string":
            return Literal(_unquote(token), token.column)
        if token.kind == "keyword" and token.text in ("true", "false"):
            return Literal(token.text == "true", token.column)
        if token.kind == "name":
            if self._accept("("):
                return Call(token.text, self._items(")", "')' or another argument"), token.column)
            return Name(token.text, token.column)
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            self._expect(")", "')'")
            return inner
        if token.kind == "op" and token.text == "[":
            return ListOf(self._items("]", "']' or another item"), token.column)
        raise ExpressionError(f"expected a value, found {_shown(token)}", token.column)

    def _items(self, close: str, what: str) -> tuple[Node, ...]:
        items: list[Node] = []
        if self._accept(close):
            return ()
        while True:
            items.append(self.expression())
            if self._accept(close):
                return tuple(items)
            self._expect(",", what)


def _number(token: _Token) -> int | float:
    if len(token.text) > 18:
        raise ExpressionError(f"the number {token.text[:20]}... is too long", token.column)
    return float(token.text) if "." in token.text else int(token.text)
