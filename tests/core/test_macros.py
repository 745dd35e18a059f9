import random

import pytest

from personae.core.macros import MAX_DICE, expand, roll


def fill(text: str, seed: int = 1, **kwargs: str) -> str:
    return expand(text, char="Wren", user="Sam", rng=random.Random(seed), **kwargs)


def test_names_in_every_spelling_and_case() -> None:
    text = "{{char}} greets {{ user }}; <BOT> and <char> wave at <USER>. {{Char}} <bot>"
    assert fill(text) == "Wren greets Sam; Wren and Wren wave at Sam. Wren Wren"


def test_comments_are_removed() -> None:
    text = (
        "a{{// the author's note, with {{user}}? no}}b {{comment: shown in UIs}}c{{hidden_key:k}}"
    )
    assert fill(text) == "ab c"


def test_original_is_the_default_it_overrides_with_its_macros_expanded() -> None:
    text = "{{original}} Also: be terse."
    assert fill(text, original="You are {{char}}.") == "You are Wren. Also: be terse."
    assert fill("{{original}}x") == "x"  # no default, nothing


def test_random_picks_from_comma_or_double_colon_lists() -> None:
    seen = {fill("{{random:red,green,blue}}", seed) for seed in range(60)}
    assert seen == {"red", "green", "blue"}
    seen = {fill("{{random::one, two::three}}", seed) for seed in range(60)}
    assert seen == {"one, two", "three"}
    assert fill("{{random:a\\,b}}") == "a,b"  # an escaped comma is part of the option


def test_random_follows_the_rng_it_is_given() -> None:
    text = "{{random:a,b,c,d,e,f,g,h}} {{roll:1000}}"
    assert fill(text, seed=7) == fill(text, seed=7)
    assert len({fill(text, seed) for seed in range(10)}) > 1


def test_pick_is_stable_per_seed_whatever_the_rng() -> None:
    text = "{{pick:a,b,c,d,e,f,g,h,i,j}}-{{pick:a,b,c,d,e,f,g,h,i,j}}"
    first = fill(text, seed=1, pick_seed="conversation-1")
    assert all(fill(text, seed=s, pick_seed="conversation-1") == first for s in range(20))
    others = {fill(text, pick_seed=f"conversation-{n}") for n in range(30)}
    assert len(others) > 5  # other conversations pick differently
    left, right = zip(*(o.split("-") for o in others), strict=True)
    assert left != right  # two picks in one text are independent


def test_roll_totals_stay_in_range() -> None:
    for seed in range(50):
        assert 1 <= int(fill("{{roll:6}}", seed)) <= 6
        assert 1 <= int(fill("{{roll:d20}}", seed)) <= 20
        assert 1 <= int(fill("{{roll:D20}}", seed)) <= 20
        assert 5 <= int(fill("{{roll:2d6+3}}", seed)) <= 15
        assert 3 <= int(fill("{{roll 3d4}}", seed)) <= 12


@pytest.mark.parametrize("text", ["{{roll:abc}}", "{{roll:0}}", f"{{{{roll:{MAX_DICE + 1}d6}}}}"])
def test_a_malformed_or_oversized_roll_is_left_as_written(text: str) -> None:
    assert fill(text) == text


def test_roll_parses_dice_notation() -> None:
    assert roll("3d1+2", random.Random(0)) == 5
    assert roll("d1", random.Random(0)) == 1
    assert roll("2x6", random.Random(0)) is None


def test_functions_nest_and_see_expanded_names() -> None:
    assert fill("{{random:{{char}},{{char}}}}") == "Wren"
    assert fill("{{reverse:{{random:abc}}}}") == "cba"


def test_unknown_macros_and_plain_text_pass_through() -> None:
    assert fill("{{unknown:thing}} and 3 < 4 > 2") == "{{unknown:thing}} and 3 < 4 > 2"
