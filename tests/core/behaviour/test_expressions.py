"""The expression language: what parses, what it means, what is refused and where."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.core.behaviour.checking import check
from personae.core.behaviour.evaluation import evaluate
from personae.core.behaviour.expressions import (
    BOOL,
    FLOAT,
    INT,
    INT_LIMIT,
    MAX_TEXT,
    STR,
    ExpressionError,
    Type,
    enum,
    parse,
)

NAMES: dict[str, Type] = {
    "affinity": INT,
    "sentiment": FLOAT,
    "mood": enum(["neutral", "happy", "hurt"]),
    "text": STR,
    "nickname": STR,
    "met": BOOL,
}
SCOPE = {
    "affinity": 55,
    "sentiment": 0.7,
    "mood": "happy",
    "text": "I found a Kitten near the harbour?",
    "nickname": "Sunny",
    "met": False,
}


def run(text: str, **scope: object) -> object:
    expression = parse(text)
    check(expression, NAMES)
    return evaluate(expression, {**SCOPE, **scope})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-affinity + 5", -50),
        ("0.5 * 4", 2.0),
        ("affinity >= 50 and mood != 'hurt'", True),
        ("not met or affinity < 10", True),
        ("not (affinity > 10)", False),
        ("mood in ['happy', 'hurt']", True),
        ("mood not in ['happy']", False),
        ('"Kitten" in text', True),
        ('"kitten" in text', False),  # 'in' is exact; mentions() ignores case
        ('mentions("kitten", "puppy")', True),
        ('mentions("kit")', False),  # whole words only
        ('mentions("near the harbour")', True),
        ("clamp(affinity + 100, 0, 100)", 100),
        ("clamp(affinity - 100, 0, 100)", 0),
        ("round(sentiment * 10)", 7),
        ("min(affinity, 10, 99)", 10),
        ("max(1, 2.5)", 2.5),
        ("abs(-3)", 3),
        ("nickname + '!'", "Sunny!"),
        ("'it\\'s' == \"it's\"", True),
        ("true == met", False),
        ("affinity == 55.0", True),
    ],
)
def test_expressions_mean_what_they_say(text: str, expected: object) -> None:
    assert run(text) == expected


def test_and_or_short_circuit_on_the_scope() -> None:
    assert run("met and mentions('x')", met=False) is False
    assert run("not met or affinity > 999", met=False) is True


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("affinity >=", "expected a value, found the end", 12),
        ("(1 + 2", "expected ')'", 7),
        ("1 + + 2", "expected a value, found '+'", 5),
        ("affinity = 3", "unexpected character '='", 10),
        ("'open", "a string is not closed", 1),
        ("1 < 2 < 3", "comparisons cannot be chained", 7),
        ("affinity 3", "unexpected '3' after a complete expression", 10),
        ("'a\\q'", "unknown escape", 3),
        ("", "the expression is empty", 1),
        ("f(1,", "expected a value, found the end", 5),
        ("[1, 2", "expected ']' or another item", 6),
    ],
)
def test_bad_syntax_names_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as error:
        parse(text)
    assert message in error.value.message
    assert error.value.column == column
    assert f"(column {column})" in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("afinity > 3", "unknown variable 'afinity'; did you mean 'affinity'?"),
        ("affinity > 'x'", "cannot order int and str"),
        ("affinity == 'x'", "cannot compare int with str"),
        ("mood == 'sad'", "'sad' is not a value of mood (neutral, happy, hurt)"),
        ("mood in ['happy', 'sad']", "'sad' is not a value of mood"),
        ("affinity and met", "'and' joins true/false values, not int"),
        ("not affinity", "'not' needs true or false, not int"),
        ("-mood", "'-' needs a number"),
        ("mood * 2", "cannot use '*' on one of neutral, happy, hurt and int"),
        ("eval('1')", "unknown function 'eval'"),
        ("clamp(1, 2)", "clamp(x, low, high): give it 3 numbers"),
        ("mentions(3)", "mentions(word, ...): give it one or more words"),
        ("affinity in text", "'in' text needs text on its left"),
        ("3 in affinity", "'in' needs a list or text on its right"),
        ("'a' in [1, 2]", "str is never in a list of int"),
        ("[1, 'a'] == 1", "a list's items must all be"),
        ("1 in [[1]]", "a list holds plain values"),
    ],
)
def test_type_errors_are_found_before_anything_runs(text: str, message: str) -> None:
    expression = parse(text)
    with pytest.raises(ExpressionError) as error:
        check(expression, NAMES)
    assert message in error.value.message


def test_types_of_results() -> None:
    assert check(parse("affinity + 1"), NAMES) == INT
    assert check(parse("affinity + sentiment"), NAMES) == FLOAT
    assert check(parse("mood + '!'"), NAMES) == STR
    assert check(parse("mood"), NAMES) == NAMES["mood"]
    assert check(parse("round(sentiment)"), NAMES) == INT


def test_numbers_stay_bounded_and_strings_short() -> None:
    big = " * ".join(["9999999"] * 20)
    assert run(big) == INT_LIMIT
    assert run(" * ".join(["1000000000.0"] * 40)) == 1e300  # finite, not inf
    grown = run(" + ".join(["nickname"] * 50), nickname="x" * 200)
    assert isinstance(grown, str)
    assert len(grown) == MAX_TEXT


def test_depth_and_length_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("(" * 100 + "1" + ")" * 100)
    with pytest.raises(ExpressionError, match="operators deep"):
        parse(" + ".join(["1"] * 150))
    with pytest.raises(ExpressionError, match="longer than"):
        parse("1" + " + 1" * 1000)
    with pytest.raises(ExpressionError, match="too long"):
        parse("1" * 30)


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(
            st.sampled_from(
                [
                    "affinity",
                    "mood",
                    "(",
                    ")",
                    "[",
                    "]",
                    ",",
                    "and",
                    "or",
                    "not",
                    "in",
                    "+",
                    "-",
                    "*",
                    "==",
                    "<",
                    ">=",
                    "1",
                    "2.5",
                    "'x'",
                    '"y',
                    "mentions",
                    "clamp",
                    " ",
                ]
            ),
            max_size=30,
        ).map("".join),
    )
)
def test_any_text_either_parses_or_raises_the_defined_error(text: str) -> None:
    try:
        expression = parse(text)
    except ExpressionError as error:
        column = error.column
    else:
        column = None
    if column is not None:
        assert 1 <= column <= len(text) + 1
        return
    try:
        result_type = check(expression, NAMES)
    except ExpressionError:
        return
    if result_type.kind != "list":
        evaluate(expression, SCOPE)  # a checked expression evaluates without raising
