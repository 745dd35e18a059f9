"""The running count of a benchmark: turns started, completed, failed (by kind), in flight."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from personae.loadgen.outcome import TurnOutcome


@dataclass
class Tally:
    """What has happened so far; the progress display reads it while the run goes on."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    dropped: int = 0  # open loop: arrivals refused because max_in_flight turns were running
    in_flight: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: list[TurnOutcome] = field(default_factory=list)

    def record(self, outcome: TurnOutcome) -> None:
        self.outcomes.append(outcome)
        if outcome.ok:
            self.completed += 1
        else:
            self.failed += 1
            self.errors[outcome.error or "no_reply"] += 1
