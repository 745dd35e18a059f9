"""The rule-based fact extractor, table-driven: what it reads and what it must not."""

from __future__ import annotations

import pytest

from personae.core.memory.extract import FactKind, extract_facts

STATED = [
    ("My name is Sam Carter.", FactKind.NAME, "Sam Carter", "The user's name is Sam Carter."),
    ("hi, my name is sam", FactKind.NAME, "Sam", "The user's name is Sam."),
    ("Just call me Jo!", FactKind.NAME, "Jo", "The user's name is Jo."),
    ("My name\u2019s Ana", FactKind.NAME, "Ana", "The user's name is Ana."),
    (
        "I really love hiking in the Alps, but not in winter",
        FactKind.LIKE,
        "hiking in the Alps",
        "The user loves hiking in the Alps.",
    ),
    ("I like green tea.", FactKind.LIKE, "green tea", "The user likes green tea."),
    ("I hate rainy Mondays.", FactKind.DISLIKE, "rainy Mondays", "The user hates rainy Mondays."),
    ("I don't like olives", FactKind.DISLIKE, "olives", "The user does not like olives."),
    ("I can\u2019t stand jazz", FactKind.DISLIKE, "jazz", "The user cannot stand jazz."),
    ("I live in Porto, near the river.", FactKind.LOCATION, "Porto", "The user lives in Porto."),
    ("I'm living in Lyon", FactKind.LOCATION, "Lyon", "The user lives in Lyon."),
    (
        "My birthday is on March 3rd.",
        FactKind.BIRTHDAY,
        "--03-03",
        "The user's birthday is on March 3.",
    ),
    (
        "my birthday is the 12th of October",
        FactKind.BIRTHDAY,
        "--10-12",
        "The user's birthday is on October 12.",
    ),
    (
        "My birthday's 1990-02-29",
        FactKind.BIRTHDAY,
        "--02-29",
        "The user's birthday is on February 29.",
    ),
    ("I'm 34 years old", FactKind.AGE, "34", "The user is 34 years old."),
    ("I am 7 yrs old", FactKind.AGE, "7", "The user is 7 years old."),
    ("My sister is called Clara.", FactKind.RELATIONSHIP, "Clara", "The user's sister is Clara."),
    ("my dog's name is Biscuit", FactKind.RELATIONSHIP, "Biscuit", "The user's dog is Biscuit."),
    (
        "My best friend, Lena Vogel",
        FactKind.RELATIONSHIP,
        "Lena Vogel",
        "The user's best friend is Lena Vogel.",
    ),
]


@pytest.mark.parametrize(("text", "kind", "value", "statement"), STATED)
def test_reads_what_the_user_states(text: str, kind: FactKind, value: str, statement: str) -> None:
    facts = extract_facts(text)
    assert [(f.kind, f.value, f.text) for f in facts] == [(kind, value, statement)]
    assert 0 < facts[0].importance <= 1


@pytest.mark.parametrize(
    "text",
    [
        "Is my name Sam?",  # a question
        "Do you like jazz?",
        "My name is not Bob.",  # negated
        "I would like a coffee",  # a wish, not a preference
        "My birthday is 2001-02-30",  # no such day
        "I'm 300 years old",  # not an age
        "My sister is tired.",  # not a name
        "call me later",  # not a name
        "",
    ],
)
def test_reads_nothing_into_what_states_no_fact(text: str) -> None:
    assert extract_facts(text) == []


def test_several_facts_in_one_message_each_once() -> None:
    text = (
        "Hi! My name is Sam. I live in Porto. My name is Sam, really. I love cats and I hate rain."
    )
    assert [(f.kind, f.value) for f in extract_facts(text)] == [
        (FactKind.NAME, "Sam"),
        (FactKind.LOCATION, "Porto"),
        (FactKind.LIKE, "cats"),
        (FactKind.DISLIKE, "rain"),
    ]
    assert extract_facts("My sister is Clara and my brother is Tom.")[1].subject == "brother"
