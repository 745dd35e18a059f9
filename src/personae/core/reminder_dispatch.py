"""Delivering reminders when they are due: a background loop (run by the supervisor) claims
what is due and hands each reminder to ``Deliver``, then marks it delivered.

Claiming comes first, in one transaction (``ReminderStore.claim_due``): two dispatchers, or a
restart that finds overdue reminders, never deliver one twice. A delivery that raises is
retried later with a doubling delay, up to ``max_attempts`` claims; a process that died
mid-delivery leaves a claim that is taken again after ``lease_s``, and ``Deliver`` is
idempotent on the reminder id (``post_reminder`` checks for its message), so the user still
hears it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from personae.core.reminder_store import Reminder, ReminderStore
from personae.errors import NotFound

log = structlog.get_logger(__name__)

Deliver = Callable[[Reminder], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    poll_interval_s: float = 5.0  # the longest a due reminder waits (less when woken)
    lease_s: float = 120.0  # a claim older than this is taken again (its process died)
    max_attempts: int = 5
    retry_initial_s: float = 5.0
    batch: int = 50


class ReminderDispatcher:
    def __init__(
        self,
        store: ReminderStore,
        deliver: Deliver,
        policy: DispatchPolicy | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self._deliver = deliver
        self.policy = policy or DispatchPolicy()
        self._now = now
        self._wakeup = wakeup or asyncio.Event()  # set by whoever adds a reminder
        self.delivered = 0  # counters for health and tests
        self.failed = 0

    def wake(self) -> None:
        """A reminder was added: look at the schedule again (it may be due sooner)."""
        self._wakeup.set()

    async def run_forever(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.tick()
            except Exception:  # storage trouble: keep the loop, look again shortly
                log.exception("reminder pass failed")
            await self._sleep_until_due()

    async def tick(self) -> int:
        """Deliver everything due now; returns how many were delivered."""
        done = 0
        while True:
            claimed = await self.store.claim_due(
                self._now(), lease_s=self.policy.lease_s, limit=self.policy.batch
            )
            for reminder in claimed:
                done += await self._one(reminder)
            if len(claimed) < self.policy.batch:
                return done

    async def _one(self, reminder: Reminder) -> int:
        try:
            await self._deliver(reminder)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            # The conversation or the user was erased: there is nobody to remind.
            if isinstance(exc, NotFound) or reminder.attempts >= self.policy.max_attempts:
                log.warning("reminder given up", reminder=reminder.id, error=error)
                await self.store.give_up(reminder.id, self._now(), error)
                self.failed += 1
            else:
                delay = self.policy.retry_initial_s * 2 ** (reminder.attempts - 1)
                log.info("reminder delivery failed", reminder=reminder.id, retry_in_s=delay)
                await self.store.retry_later(
                    reminder.id, self._now() + timedelta(seconds=delay), error
                )
            return 0
        await self.store.delivered(reminder.id, self._now())
        self.delivered += 1
        log.info("reminder delivered", reminder=reminder.id, user=reminder.user)
        return 1

    async def _sleep_until_due(self) -> None:
        timeout = self.policy.poll_interval_s
        due = await self.store.next_due_at()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - self._now()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
