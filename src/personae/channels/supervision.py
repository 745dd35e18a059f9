"""Reconnecting a channel: exponential backoff with full jitter, and a bound on attempts per
window, after which the channel waits for the window to free an attempt (so a platform that
is down for an hour costs a few attempts a minute, not a tight loop). tenacity drives the
loop; the wait reads this policy."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState
from tenacity.wait import wait_base


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    initial_s: float = 1.0  # the first wait is drawn from [0, this]
    max_s: float = 60.0  # the window doubles per failure up to this
    max_attempts: int = 5  # attempts allowed per window ...
    window_s: float = 60.0  # ... of this many seconds

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or min(self.initial_s, self.max_s, self.window_s) < 0:
            raise ValueError("reconnect settings must be positive")


class Reconnects(wait_base):
    """The wait before the next connection attempt. ``connected()`` resets the streak (a
    connection that worked for an hour and then dropped starts again from ``initial_s``);
    the attempts counted against the window stay."""

    def __init__(
        self,
        policy: ReconnectPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._uniform = uniform
        self.streak = 0  # failures since the last successful connection
        self._attempts: deque[float] = deque()
        self.cooling = False  # the last wait was stretched to respect the window

    def connected(self) -> None:
        self.streak = 0

    def next_wait(self) -> float:
        """Count a failed attempt and return how long to wait before the next one."""
        now = self._clock()
        policy = self.policy
        self.streak += 1
        self._attempts.append(now)
        while self._attempts and self._attempts[0] <= now - policy.window_s:
            self._attempts.popleft()
        wait = self._uniform(0.0, min(policy.max_s, policy.initial_s * 2.0 ** (self.streak - 1)))
        self.cooling = len(self._attempts) >= policy.max_attempts
        if self.cooling:  # the window is full: wait until its oldest attempt leaves it
            wait = max(wait, self._attempts[0] + policy.window_s - now)
        return wait

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.next_wait()
