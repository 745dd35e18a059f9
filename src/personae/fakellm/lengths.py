"""How many tokens a fake reply has: fixed, uniform or log-normal, drawn from a seeded generator.

Written as a spec string so that one CLI option carries it: ``fixed:100``, ``uniform:20-200``,
``lognormal:100,0.6`` (median 100 tokens, sigma 0.6 of the underlying normal; real chat
replies have that long right tail).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

Kind = Literal["fixed", "uniform", "lognormal"]
_MAX_TOKENS = 1_000_000


@dataclass(frozen=True)
class ReplyLengths:
    kind: Kind = "fixed"
    low: int = 100  # fixed: the length; uniform: the lowest; lognormal: the median
    high: int = 100  # uniform: the highest (inclusive)
    sigma: float = 0.0  # lognormal only

    def __post_init__(self) -> None:
        if not 1 <= self.low <= _MAX_TOKENS or not 1 <= self.high <= _MAX_TOKENS:
            raise ValueError(f"reply lengths must be 1..{_MAX_TOKENS} tokens")
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError(f"uniform reply lengths need low <= high, got {self.low}-{self.high}")
        if self.kind == "lognormal" and not 0 <= self.sigma <= 5:
            raise ValueError(f"lognormal sigma must be 0..5, got {self.sigma}")

    @classmethod
    def parse(cls, spec: str) -> ReplyLengths:
        """``fixed:N``, ``uniform:LOW-HIGH`` or ``lognormal:MEDIAN,SIGMA``; ValueError with
        the expected forms otherwise."""
        kind, _, value = spec.strip().partition(":")
        parsed: tuple[Kind, int, int, float] | None = None
        try:
            if kind == "fixed":
                parsed = ("fixed", int(value), int(value), 0.0)
            elif kind == "uniform":
                low, high = value.split("-")
                parsed = ("uniform", int(low), int(high), 0.0)
            elif kind == "lognormal":
                median, sigma = value.split(",")
                parsed = ("lognormal", int(median), int(median), float(sigma))
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValueError(
                f"bad reply length spec {spec!r}: "
                "use fixed:N, uniform:LOW-HIGH or lognormal:MEDIAN,SIGMA"
            )
        return cls(*parsed)

    def draw(self, rng: random.Random) -> int:
        if self.kind == "uniform":
            return rng.randint(self.low, self.high)
        if self.kind == "lognormal":
            drawn = rng.lognormvariate(math.log(self.low), self.sigma)
            return max(1, min(_MAX_TOKENS, round(drawn)))
        return self.low

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.low}-{self.high}"
        if self.kind == "lognormal":
            return f"lognormal:{self.low},{self.sigma:g}"
        return f"fixed:{self.low}"
