"""Injected failures: a share of requests answered 429, 500 or 503, left hanging (a timeout on
the caller's side), or cut off midway through the reply (the connection drops).

One uniform draw per request picks at most one fault, so the rates add up and must stay <= 1.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Literal

Fault = Literal["status_429", "status_500", "status_503", "timeout", "disconnect"]
KINDS: tuple[str, ...] = ("429", "500", "503", "timeout", "disconnect")


@dataclass(frozen=True)
class FaultRates:
    status_429: float = 0.0
    status_500: float = 0.0
    status_503: float = 0.0
    timeout: float = 0.0
    disconnect: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            rate = getattr(self, field.name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {field.name} must be 0..1, got {rate}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.total:g}, more than 1")

    @property
    def total(self) -> float:
        return float(sum(getattr(self, field.name) for field in fields(self)))

    @classmethod
    def parse(cls, specs: list[str]) -> FaultRates:
        """``KIND=RATE`` items, KIND one of 429, 500, 503, timeout, disconnect."""
        rates: dict[str, float] = {}
        for spec in specs:
            kind, sep, value = spec.partition("=")
            kind = kind.strip()
            if not sep or kind not in KINDS:
                raise ValueError(
                    f"bad fault {spec!r}: use KIND=RATE, KIND one of {', '.join(KINDS)}"
                )
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"bad fault rate in {spec!r}: not a number") from None
            rates[f"status_{kind}" if kind.isdigit() else kind] = rate
        return cls(**rates)

    def draw(self, rng: random.Random) -> Fault | None:
        if self.total == 0.0:
            return None
        point = rng.random()
        for field in fields(self):
            point -= getattr(self, field.name)
            if point < 0:
                name: Fault = field.name  # type: ignore[assignment]
                return name
        return None
