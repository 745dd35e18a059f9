"""The background task supervisor: a crashed task starts again after a backoff that doubles
with each crash in a row, and its state says so. Time is moved by hand."""

from __future__ import annotations

import asyncio

import pytest

from personae.core.supervisor import Supervisor, TaskState


class ManualSleep:
    """Records each backoff and lets the test decide when it ends."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self.release.wait()
        self.release.clear()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_crashing_task_is_restarted_with_doubling_backoff() -> None:
    sleep, now = ManualSleep(), [0.0]
    supervisor = Supervisor(initial_backoff_s=1, max_backoff_s=4, sleep=sleep, clock=lambda: now[0])
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 4:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.Event().wait()  # the fifth run stays up

    supervisor.start("flaky", flaky)
    await settle()
    status = supervisor.status()["flaky"]
    assert status.state is TaskState.BACKOFF
    assert not status.healthy
    assert status.describe() == "error: crashed (RuntimeError: boom 1); restart 1 in 1.0s"
    for _ in range(4):
        sleep.release.set()
        await settle()
    assert sleep.waits == [1, 2, 4, 4]  # doubled, capped
    assert len(runs) == 5
    status = supervisor.status()["flaky"]
    assert status.state is TaskState.RUNNING
    assert status.restarts == 4
    assert status.describe() == "ok (restarted 4 times; last error: RuntimeError: boom 4)"
    await supervisor.close()
    assert supervisor.status()["flaky"].describe() == "error: stopped"


async def test_a_task_that_ran_long_enough_starts_again_from_the_first_backoff() -> None:
    sleep, now = ManualSleep(), [0.0]
    supervisor = Supervisor(
        initial_backoff_s=1, stable_after_s=60, sleep=sleep, clock=lambda: now[0]
    )
    crashes = 0

    async def crash_after_a_while() -> None:
        nonlocal crashes
        crashes += 1
        if crashes == 3:
            now[0] += 120  # this run lasted two minutes
        raise ValueError("lost the folder")

    supervisor.start("watcher", crash_after_a_while)
    for _ in range(3):
        await settle()
        sleep.release.set()
    await settle()
    assert sleep.waits[:3] == [1, 2, 1]
    await supervisor.close()


async def test_returning_counts_as_a_crash_and_names_must_be_unique() -> None:
    sleep = ManualSleep()
    supervisor = Supervisor(sleep=sleep)

    async def stops() -> None:
        return

    supervisor.start("sweeper", stops)
    await settle()
    assert supervisor.status()["sweeper"].last_error == "it returned"
    with pytest.raises(ValueError, match="sweeper"):
        supervisor.start("sweeper", stops)
    await supervisor.close()
    with pytest.raises(RuntimeError, match="closed"):
        supervisor.start("late", stops)
