"""The circuit breaker as a state machine, on a clock moved by hand."""

from __future__ import annotations

import pytest

from personae.core.breaker import BreakerState, CircuitBreaker, Permit
from personae.errors import IllegalTransition
from tests.conftest import ManualClock


def make(clock: ManualClock, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker("b", failure_threshold=threshold, reset_timeout_s=reset, clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.admit()
        assert permit is not None
        breaker.failed(permit)


def test_opens_after_threshold_consecutive_failures(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.admit() is None
    assert breaker.snapshot().retry_in_s == 30.0


def test_a_success_resets_the_failure_count(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 2)
    breaker.succeeded(Permit.NORMAL)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().consecutive_failures == 2


def test_open_then_half_open_lets_exactly_one_probe_through(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 29.9
    assert breaker.admit() is None
    assert not breaker.would_admit()
    clock.now += 0.1
    assert breaker.would_admit()
    assert breaker.admit() is Permit.PROBE
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is None  # the probe is out: everyone else is passed over
    assert not breaker.would_admit()


def test_a_successful_probe_closes_the_breaker(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 30
    breaker.succeeded(breaker.admit() or Permit.NORMAL)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admit() is Permit.NORMAL
    assert breaker.snapshot().consecutive_failures == 0


def test_a_failed_probe_opens_it_again_for_a_full_reset_timeout(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 45
    probe = breaker.admit()
    assert probe is Permit.PROBE
    breaker.failed(probe)
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().opened_total == 2
    clock.now += 29
    assert breaker.admit() is None
    clock.now += 1
    assert breaker.admit() is Permit.PROBE


def test_a_probe_released_without_a_verdict_lets_the_next_call_probe(clock: ManualClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    clock.now += 30
    probe = breaker.admit()
    assert probe is Permit.PROBE
    breaker.released(probe)  # e.g. the client went away
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit() is Permit.PROBE


def test_late_results_of_calls_admitted_before_opening_do_not_decide(clock: ManualClock) -> None:
    breaker = make(clock, threshold=1)
    early = breaker.admit()
    assert early is Permit.NORMAL
    fail(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    breaker.succeeded(early)  # a slow call admitted while closed finishes now
    breaker.failed(early)
    assert breaker.state is BreakerState.OPEN
    clock.now += 30
    assert breaker.admit() is Permit.PROBE
    breaker.failed(Permit.NORMAL)  # half-open: only the probe decides
    assert breaker.state is BreakerState.HALF_OPEN


def test_illegal_transitions_raise(clock: ManualClock) -> None:
    breaker = make(clock)
    with pytest.raises(IllegalTransition, match="closed -> half_open"):
        breaker._move(BreakerState.HALF_OPEN)
    fail(breaker, 3)
    with pytest.raises(IllegalTransition, match="open -> closed"):
        breaker._move(BreakerState.CLOSED)


def test_rejects_nonsense_configuration(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        make(clock, threshold=0)
