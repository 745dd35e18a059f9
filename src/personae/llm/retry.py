"""How often a turn walks its chain again after every backend failed, and how long it waits in
between: exponential backoff with full jitter, inside a per-turn budget (tenacity drives it).

Failing over to the next backend is immediate and is not a retry; a retry is another round
over the whole chain, for failures that may pass (429, 5xx, timeouts, lost connections).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timekeeper:
    """Time as the routing machinery sees it: tests replace it to move time by hand."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    uniform: Callable[[float, float], float] = random.uniform  # draws the jitter


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 1  # extra rounds after the first; 0: walk the chain once
    budget_s: float = 8.0  # no round starts (backoff included) later than this into the turn
    backoff_initial_s: float = 0.5  # the first backoff is drawn from [0, this]
    backoff_max_s: float = 4.0  # the window doubles per round up to this

    def __post_init__(self) -> None:
        if min(self.retries, self.budget_s, self.backoff_initial_s, self.backoff_max_s) < 0:
            raise ValueError("retry settings must not be negative")

    def window_s(self, round_number: int) -> float:
        """The backoff after round ``round_number`` (1-based) is drawn from [0, this]."""
        window: float = self.backoff_initial_s * 2.0 ** (round_number - 1)
        return min(self.backoff_max_s, window)


async def run_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    *,
    retryable: Callable[[BaseException], bool],
    time: Timekeeper | None = None,
) -> T:
    """``attempt()`` until it returns, raises something not ``retryable``, or the policy is
    spent; then its last exception propagates unchanged."""
    if policy.retries == 0:  # nothing to retry: skip the machinery
        return await attempt()
    time = time or Timekeeper()
    started = time.now()
    # The first round runs outside tenacity: nearly every turn ends there, and building the
    # retrying machinery each turn cost more than the rest of the routing. A retryable
    # failure hands over to tenacity as if it had run that round itself.
    try:
        return await attempt()
    except BaseException as exc:
        if not retryable(exc):
            raise
        first: BaseException | None = exc

    async def rounds() -> T:
        nonlocal first
        if first is not None:  # tenacity's round 1: the failure already seen
            failed, first = first, None
            raise failed
        return await attempt()

    retrying = AsyncRetrying(
        sleep=time.sleep,
        stop=stop_after_attempt(policy.retries + 1)
        | _OutOfBudget(policy.budget_s, time.now, started),
        wait=_FullJitter(policy, time.uniform),
        retry=retry_if_exception(retryable),
        reraise=True,
    )
    return cast(T, await retrying(rounds))


class _FullJitter(wait_base):
    """tenacity's ``wait_random_exponential`` with the random draw injected."""

    def __init__(self, policy: RetryPolicy, uniform: Callable[[float, float], float]) -> None:
        self.policy = policy
        self.uniform = uniform

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.uniform(0.0, self.policy.window_s(retry_state.attempt_number))


class _OutOfBudget(stop_base):
    """Stop when the next round would start more than ``budget_s`` after the first began
    (tenacity's own ``stop_before_delay`` reads the real clock; this one reads ours)."""

    def __init__(self, budget_s: float, now: Callable[[], float], started: float) -> None:
        self.budget_s = budget_s
        self.now = now
        self.started = started  # when the turn's first round began

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.now() - self.started + (retry_state.upcoming_sleep or 0.0) > self.budget_s
