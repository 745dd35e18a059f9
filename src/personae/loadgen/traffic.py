"""The traffic model: when turns arrive, who sends them, to which character, saying what.

Popularity is skewed (a Zipf law over characters and over intents: a few take most of the
traffic), message lengths have a long tail (log-normal words), arrivals of independent users
are a Poisson process (exponential gaps), and a user thinks between turns (exponential).
Every draw comes from one seeded generator, so a run's traffic repeats.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

# What a user comes to do, most common first. No slash commands: those skip the model.
INTENTS: tuple[str, ...] = (
    "Tell me more about that.",
    "What would you do in my place?",
    "Let's continue the story where we left off.",
    "Can you explain it again, more simply?",
    "How was your day?",
    "Describe the place you live in.",
    "Give me some advice about learning something new.",
    "What is your favourite memory?",
)
# Filler words, kept as prose so it reads as one (ruff would list them one per line).
_FILLER = (  # noqa: SIM905
    "the quiet river ran past old stone houses while evening light settled over hills and "
    "somebody somewhere was humming a tune about journeys friends lanterns and rain"
).split()


class Zipf:
    """Rank ``k`` (1-based) of ``items`` is chosen with weight ``1 / k**s``."""

    def __init__(self, items: Sequence[str], s: float) -> None:
        if not items:
            raise ValueError("nothing to choose from")
        self.items = list(items)
        self._cumulative = list(itertools.accumulate(1 / k**s for k in range(1, len(items) + 1)))

    def draw(self, rng: random.Random) -> str:
        return rng.choices(self.items, cum_weights=self._cumulative)[0]


class Traffic:
    def __init__(
        self,
        rng: random.Random,
        characters: Sequence[str],
        *,
        zipf_s: float,
        context_words: int,
        context_sigma: float,
        max_words: int,
    ) -> None:
        self.rng = rng
        self.characters = Zipf(characters, zipf_s)
        self.intents = Zipf(INTENTS, zipf_s)
        self._mu = math.log(context_words)
        self._sigma = context_sigma
        self._max_words = max_words

    def character(self) -> str:
        return self.characters.draw(self.rng)

    def message(self) -> str:
        """An intent, padded with filler to a log-normal length in words."""
        intent = self.intents.draw(self.rng)
        words = max(1, min(self._max_words, round(self.rng.lognormvariate(self._mu, self._sigma))))
        pad = words - len(intent.split())
        if pad <= 0:
            return intent
        start = self.rng.randrange(len(_FILLER))
        filler = [_FILLER[(start + i) % len(_FILLER)] for i in range(pad)]
        return f"{intent} {' '.join(filler)}"

    def arrival_gap_s(self, rate: float) -> float:
        return self.rng.expovariate(rate)

    def think_s(self, mean_s: float) -> float:
        return self.rng.expovariate(1 / mean_s) if mean_s > 0 else 0.0
