"""A circuit breaker per backend: stop sending turns to a backend that keeps failing, and let
one probe through now and then to find out whether it is back.

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(reset_timeout_s passed, next call)--> HALF_OPEN (that call is the probe)
    HALF_OPEN --(probe succeeds)--> CLOSED
    HALF_OPEN --(probe fails)--> OPEN (the reset timeout starts again)

Any other transition is a bug and raises ``IllegalTransition``. The clock is injected, so
tests move time instead of sleeping.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from personae.errors import IllegalTransition

log = structlog.get_logger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_ALLOWED: dict[BreakerState, frozenset[BreakerState]] = {
    BreakerState.CLOSED: frozenset({BreakerState.OPEN}),
    BreakerState.OPEN: frozenset({BreakerState.HALF_OPEN}),
    BreakerState.HALF_OPEN: frozenset({BreakerState.CLOSED, BreakerState.OPEN}),
}


class Permit(enum.Enum):
    """What ``CircuitBreaker.admit`` grants; hand it back with the outcome."""

    NORMAL = "normal"
    PROBE = "probe"  # the one call a half-open breaker lets through


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: BreakerState
    consecutive_failures: int
    opened_total: int  # how often it has opened since start
    retry_in_s: float | None  # while open: seconds until the next probe may go


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s < 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout_s >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._opened_total = 0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def would_admit(self) -> bool:
        """Whether ``admit`` would grant a permit now, without taking it."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN:
            return not self._probing
        return self._clock() - self._opened_at >= self.reset_timeout_s

    def admit(self) -> Permit | None:
        """A permit to call the backend, or ``None`` while it is open (or probed)."""
        if self._state is BreakerState.CLOSED:
            return Permit.NORMAL
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.reset_timeout_s:
                return None
            self._move(BreakerState.HALF_OPEN)
        if self._probing:
            return None
        self._probing = True
        return Permit.PROBE

    def succeeded(self, permit: Permit) -> None:
        if permit is Permit.PROBE:
            self._probing = False
            if self._state is BreakerState.HALF_OPEN:
                self._move(BreakerState.CLOSED)
        if self._state is BreakerState.CLOSED:
            self._failures = 0

    def failed(self, permit: Permit) -> None:
        if permit is Permit.PROBE:
            self._probing = False
            if self._state is BreakerState.HALF_OPEN:
                self._open()
            return
        # Calls admitted before the breaker opened may still report; only while closed do
        # they count (a half-open breaker is decided by its probe alone).
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def probe_now(self) -> None:
        """The far side is known to be back (a channel reconnected): an open breaker lets the
        next call probe at once instead of waiting out its reset timeout."""
        if self._state is BreakerState.OPEN:
            self._opened_at = self._clock() - self.reset_timeout_s

    def released(self, permit: Permit) -> None:
        """The call ended without a verdict on the backend (cancelled, or a bad request): a
        probe's slot goes back, so that the next call can probe."""
        if permit is Permit.PROBE:
            self._probing = False

    def snapshot(self) -> BreakerSnapshot:
        retry_in = None
        if self._state is BreakerState.OPEN:
            retry_in = max(0.0, self._opened_at + self.reset_timeout_s - self._clock())
        return BreakerSnapshot(self._state, self._failures, self._opened_total, retry_in)

    def _open(self) -> None:
        self._move(BreakerState.OPEN)
        self._opened_at = self._clock()
        self._opened_total += 1

    def _move(self, target: BreakerState) -> None:
        source = self._state
        if target not in _ALLOWED[source]:
            raise IllegalTransition(f"breaker {self.name!r}", source, target)
        self._state = target
        if target is BreakerState.CLOSED:
            self._failures = 0
        level = log.warning if target is BreakerState.OPEN else log.info
        level("circuit breaker", backend=self.name, source=str(source), target=str(target))
