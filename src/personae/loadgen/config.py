"""What a benchmark run does: the target, the traffic model and its limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Transport = Literal["ws", "http"]


@dataclass(frozen=True)
class BenchConfig:
    url: str  # the server's base URL, e.g. http://127.0.0.1:8000
    transport: Transport = "http"
    stream: bool = True  # HTTP only; WebSocket turns always stream
    duration_s: float = 10.0
    rate: float | None = None  # open loop: Poisson arrivals per second ...
    users: int | None = None  # ... or closed loop: this many users, each one turn at a time
    think_s: float = 0.0  # closed loop: mean think time between a user's turns (exponential)
    characters: tuple[str, ...] = ()  # empty: every model the server lists
    zipf_s: float = 1.1  # skew of the character and intent choice
    context_words: int = 20  # median words per message (log-normal) ...
    context_sigma: float = 0.8  # ... and the spread of its logarithm
    max_words: int = 2000
    max_tokens: int | None = None  # asked of the server per turn
    max_in_flight: int = 2000  # open loop: arrivals beyond this are counted as dropped
    turn_timeout_s: float = 60.0
    drain_s: float = 30.0  # after the duration, how long to wait for turns in flight
    warmup_turns: int = 0  # sent one by one before measuring (first requests pay set-up)
    api_key: str | None = None
    server_pid: int | None = None  # read CPU/RSS from /proc; else from /metrics
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://..., got {self.url!r}")
        if (self.rate is None) == (self.users is None):
            raise ValueError("give exactly one of rate (open loop) or users (closed loop)")
        if self.rate is not None and not 0 < self.rate <= 100_000:
            raise ValueError(f"rate must be 0 < rate <= 100000 turns/s, got {self.rate}")
        if self.users is not None and not 1 <= self.users <= 100_000:
            raise ValueError(f"users must be 1..100000, got {self.users}")
        if self.transport not in ("ws", "http"):
            raise ValueError(f"transport must be ws or http, got {self.transport!r}")
        positive = {
            "duration_s": self.duration_s,
            "turn_timeout_s": self.turn_timeout_s,
            "context_words": self.context_words,
            "max_words": self.max_words,
            "max_in_flight": self.max_in_flight,
            "zipf_s": self.zipf_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.think_s < 0 or self.context_sigma < 0 or self.drain_s < 0 or self.warmup_turns < 0:
            raise ValueError(
                "think_s, context_sigma, drain_s and warmup_turns must not be negative"
            )

    def public(self) -> dict[str, Any]:
        """The settings as the report records them (never the API key)."""
        settings = asdict(self)
        settings["api_key"] = "***" if self.api_key else None
        settings["characters"] = list(self.characters)
        return settings
