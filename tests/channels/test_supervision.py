"""Reconnecting: full-jitter exponential backoff, reset by a good connection, and at most
``max_attempts`` per window."""

from __future__ import annotations

from personae.channels.supervision import ReconnectPolicy, Reconnects
from tests.conftest import ManualClock


def test_waits_double_up_to_the_maximum_and_reset_after_a_connection(
    clock: ManualClock,
) -> None:
    policy = ReconnectPolicy(initial_s=1, max_s=8, max_attempts=10, window_s=1000)
    reconnects = Reconnects(policy, clock=clock, uniform=lambda low, high: high)
    waits = []
    for _ in range(5):
        waits.append(reconnects.next_wait())
        clock.now += waits[-1]
    assert waits == [1, 2, 4, 8, 8]
    reconnects.connected()
    assert reconnects.next_wait() == 1


def test_the_jitter_is_drawn_from_zero_to_the_window(clock: ManualClock) -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return low

    reconnects = Reconnects(ReconnectPolicy(initial_s=0.5, max_s=60), clock=clock, uniform=uniform)
    reconnects.next_wait()
    reconnects.next_wait()
    assert drawn == [(0.0, 0.5), (0.0, 1.0)]


def test_attempts_per_window_are_bounded(clock: ManualClock) -> None:
    policy = ReconnectPolicy(initial_s=0, max_s=0, max_attempts=3, window_s=60)
    reconnects = Reconnects(policy, clock=clock, uniform=lambda low, high: 0.0)
    assert [reconnects.next_wait() for _ in range(2)] == [0.0, 0.0]
    assert not reconnects.cooling
    assert reconnects.next_wait() == 60.0  # third failure inside the window: wait it out
    assert reconnects.cooling
    clock.now += 60
    assert reconnects.next_wait() == 0.0  # the window has moved on: attempts are free again
