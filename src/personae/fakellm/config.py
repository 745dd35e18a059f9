"""What the fake backend does: its pace, reply lengths, faults and seed."""

from __future__ import annotations

from dataclasses import dataclass, field

from personae.fakellm.faults import FaultRates
from personae.fakellm.lengths import ReplyLengths


@dataclass(frozen=True)
class FakeLLMConfig:
    first_token_s: float = 0.0  # from the request's arrival to the first token
    tokens_per_s: float = 50.0  # per stream; 0 = as fast as it can
    lengths: ReplyLengths = field(default_factory=ReplyLengths)
    faults: FaultRates = field(default_factory=FaultRates)
    seed: int = 0
    stamp_arrival: bool = True  # open each reply with `` a<ns>`` (see stamps.py)
    hang_s: float = 60.0  # how long a "timeout" fault holds the request before dropping it
    embedding_dims: int = 384
    model: str = "fake"

    def __post_init__(self) -> None:
        if self.first_token_s < 0 or self.tokens_per_s < 0 or self.hang_s < 0:
            raise ValueError("first_token_s, tokens_per_s and hang_s must not be negative")
        if not 1 <= self.embedding_dims <= 8192:
            raise ValueError(f"embedding_dims must be 1..8192, got {self.embedding_dims}")
