"""Reply lengths and fault rates: parsed from their CLI spelling, validated, drawn reproducibly
from a seed, and distributed as named."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from personae.fakellm import FakeLLMConfig, FaultRates, ReplyLengths


def test_fixed_lengths_are_fixed() -> None:
    lengths = ReplyLengths.parse("fixed:7")
    rng = random.Random(1)
    assert {lengths.draw(rng) for _ in range(50)} == {7}
    assert str(lengths) == "fixed:7"


def test_uniform_lengths_cover_the_range_and_no_more() -> None:
    lengths = ReplyLengths.parse("uniform:3-6")
    rng = random.Random(2)
    drawn = Counter(lengths.draw(rng) for _ in range(2000))
    assert set(drawn) == {3, 4, 5, 6}
    assert min(drawn.values()) > 400  # each of four values near 500


def test_lognormal_lengths_have_the_median_and_a_long_right_tail() -> None:
    lengths = ReplyLengths.parse("lognormal:100,0.6")
    rng = random.Random(3)
    drawn = [lengths.draw(rng) for _ in range(5000)]
    assert 93 <= statistics.median(drawn) <= 107
    assert statistics.mean(drawn) > statistics.median(drawn)  # skewed right
    assert min(drawn) >= 1


def test_the_same_seed_draws_the_same_lengths() -> None:
    lengths = ReplyLengths.parse("lognormal:50,1")
    rng_a, rng_b, rng_c = random.Random(9), random.Random(9), random.Random(10)
    drawn = [lengths.draw(rng_a) for _ in range(100)]
    assert drawn == [lengths.draw(rng_b) for _ in range(100)]
    assert drawn != [lengths.draw(rng_c) for _ in range(100)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fixed:abc", "bad reply length spec"),
        ("normal:5", "bad reply length spec"),
        ("uniform:5", "bad reply length spec"),
        ("uniform:9-3", "low <= high"),
        ("fixed:0", "1..1000000"),
        ("lognormal:10,9", "sigma"),
    ],
)
def test_bad_length_specs_say_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReplyLengths.parse(spec)


def test_fault_rates_parse_and_draw_in_proportion() -> None:
    rates = FaultRates.parse(["429=0.1", "500=0.05", "timeout=0.05", "disconnect=0.2"])
    assert rates.total == pytest.approx(0.4)
    rng = random.Random(4)
    drawn = Counter(rates.draw(rng) for _ in range(20_000))
    assert drawn[None] == pytest.approx(12_000, rel=0.05)
    assert drawn["status_429"] == pytest.approx(2_000, rel=0.1)
    assert drawn["disconnect"] == pytest.approx(4_000, rel=0.1)
    assert drawn["status_503"] == 0


def test_no_faults_draw_nothing() -> None:
    rng = random.Random(5)
    assert {FaultRates().draw(rng) for _ in range(100)} == {None}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["404=0.1"], "KIND=RATE"),
        (["429"], "KIND=RATE"),
        (["429=lots"], "not a number"),
        (["429=1.5"], "must be 0..1"),
        (["429=0.6", "500=0.6"], "more than 1"),
    ],
)
def test_bad_fault_specs_are_refused(specs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultRates.parse(specs)


def test_config_refuses_negative_times() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        FakeLLMConfig(first_token_s=-1)
    with pytest.raises(ValueError, match="embedding_dims"):
        FakeLLMConfig(embedding_dims=0)
