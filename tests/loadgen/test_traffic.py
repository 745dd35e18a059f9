"""The traffic model: Zipf popularity, log-normal message lengths, Poisson gaps, think times,
all repeatable from a seed."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from personae.loadgen.traffic import INTENTS, Traffic, Zipf


def _traffic(seed: int, characters: tuple[str, ...] = ("a", "b", "c", "d")) -> Traffic:
    return Traffic(
        random.Random(seed),
        characters,
        zipf_s=1.0,
        context_words=40,
        context_sigma=0.8,
        max_words=500,
    )


def test_zipf_shares_follow_one_over_rank() -> None:
    zipf = Zipf(["a", "b", "c", "d"], 1.0)
    rng = random.Random(1)
    counts = Counter(zipf.draw(rng) for _ in range(25_000))
    total = 1 + 1 / 2 + 1 / 3 + 1 / 4
    for rank, name in enumerate("abcd", start=1):
        assert counts[name] / 25_000 == pytest.approx(1 / rank / total, rel=0.06)


def test_zipf_needs_something_to_choose() -> None:
    with pytest.raises(ValueError, match="nothing to choose"):
        Zipf([], 1.0)


def test_messages_start_with_an_intent_and_have_log_normal_lengths() -> None:
    traffic = _traffic(2)
    messages = [traffic.message() for _ in range(4000)]
    lengths = [len(m.split()) for m in messages]
    assert 36 <= statistics.median(lengths) <= 44
    assert max(lengths) <= 500
    assert statistics.mean(lengths) > statistics.median(lengths)
    assert all(any(m.startswith(intent) for intent in INTENTS) for m in messages)
    assert not any(m.startswith("/") for m in messages)  # a slash command would skip the model


def test_poisson_gaps_average_one_over_the_rate_and_think_times_their_mean() -> None:
    traffic = _traffic(3)
    gaps = [traffic.arrival_gap_s(50.0) for _ in range(20_000)]
    assert statistics.mean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1 / 50, rel=0.05)  # exponential: sd = mean
    thinks = [traffic.think_s(2.0) for _ in range(20_000)]
    assert statistics.mean(thinks) == pytest.approx(2.0, rel=0.03)
    assert traffic.think_s(0.0) == 0.0


def test_the_same_seed_makes_the_same_traffic() -> None:
    def sample(seed: int) -> list[object]:
        traffic = _traffic(seed)
        return [
            (traffic.character(), traffic.message(), traffic.arrival_gap_s(10)) for _ in range(50)
        ]

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
