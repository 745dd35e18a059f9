"""Admission control on its own: slots, the line, the enqueue timeout, refusals counted."""

from __future__ import annotations

import asyncio

import pytest

from personae.core.admission import Admission
from personae.core.observe import TurnObserver
from personae.errors import Overloaded


class Refusals(TurnObserver):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def request_rejected(self, reason: str) -> None:
        self.reasons.append(reason)


async def hold(admission: Admission, release: asyncio.Event, log: list[str], name: str) -> None:
    async with admission.slot():
        log.append(name)
        await release.wait()


async def settle() -> None:
    for _ in range(5):  # let the tasks started so far reach their first wait
        await asyncio.sleep(0)


def test_bounds_must_make_sense() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        Admission(max_concurrent=0, max_queued=1, enqueue_timeout_s=1)
    with pytest.raises(ValueError, match="max_queued"):
        Admission(max_concurrent=1, max_queued=-1, enqueue_timeout_s=1)


async def test_a_slot_is_held_for_the_block_and_given_back_after() -> None:
    admission = Admission(max_concurrent=2, max_queued=0, enqueue_timeout_s=1)
    async with admission.slot():
        assert (admission.running, admission.queued) == (1, 0)
        async with admission.slot():
            assert admission.running == 2
        assert admission.running == 1
    assert admission.running == 0


async def test_a_block_that_fails_or_is_cancelled_still_gives_its_slot_back() -> None:
    admission = Admission(max_concurrent=1, max_queued=0, enqueue_timeout_s=1)
    with pytest.raises(RuntimeError, match="boom"):
        async with admission.slot():
            raise RuntimeError("boom")
    assert admission.running == 0
    started = asyncio.Event()

    async def forever() -> None:
        async with admission.slot():
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admission.running == 0
    async with admission.slot():  # the one slot is free again, not lost
        assert admission.running == 1


async def test_past_the_line_a_caller_is_refused_at_once_and_counted() -> None:
    refusals = Refusals()
    admission = Admission(
        max_concurrent=2, max_queued=1, enqueue_timeout_s=30, retry_after_s=2.5, observer=refusals
    )
    release, log = asyncio.Event(), list[str]()
    holders = [asyncio.create_task(hold(admission, release, log, n)) for n in ("a", "b", "c")]
    await settle()
    assert (admission.running, admission.queued) == (2, 1)  # c waits in line
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Overloaded) as refused:
        async with admission.slot():
            raise AssertionError("admitted past the bounds")
    assert loop.time() - started < 0.5  # at once, not after the 30 s enqueue timeout
    assert refused.value.retry_after == 2.5
    assert refused.value.context == {"retry_after": 2.5, "running": 2, "queued": 1}
    assert refusals.reasons == ["overloaded"]
    release.set()
    await asyncio.gather(*holders)
    assert log == ["a", "b", "c"]  # the one in line got its turn
    assert (admission.running, admission.queued) == (0, 0)


async def test_waiting_past_the_enqueue_timeout_is_a_refusal_and_loses_no_slot() -> None:
    refusals = Refusals()
    admission = Admission(max_concurrent=1, max_queued=4, enqueue_timeout_s=0.1, observer=refusals)
    release, log = asyncio.Event(), list[str]()
    holder = asyncio.create_task(hold(admission, release, log, "holder"))
    await settle()
    with pytest.raises(Overloaded, match="waited too long"):
        async with admission.slot():
            raise AssertionError("admitted while the only slot was held")
    assert refusals.reasons == ["overloaded"]
    assert (admission.running, admission.queued) == (1, 0)
    release.set()
    await holder
    async with admission.slot():
        assert admission.running == 1


async def test_the_line_is_first_come_first_served_and_nobody_jumps_it() -> None:
    admission = Admission(max_concurrent=1, max_queued=8, enqueue_timeout_s=5)
    release, log = asyncio.Event(), list[str]()
    first = asyncio.Event()
    tasks = [asyncio.create_task(hold(admission, first, log, "first"))]
    await settle()
    tasks += [asyncio.create_task(hold(admission, release, log, n)) for n in ("w1", "w2")]
    await settle()
    first.set()  # the slot is handed on; a newcomer arriving now must queue behind w1 and w2
    tasks.append(asyncio.create_task(hold(admission, release, log, "late")))
    release.set()
    await asyncio.gather(*tasks)
    assert log == ["first", "w1", "w2", "late"]


async def test_a_caller_that_gives_up_in_line_leaves_no_trace() -> None:
    admission = Admission(max_concurrent=1, max_queued=1, enqueue_timeout_s=30)
    release, log = asyncio.Event(), list[str]()
    holder = asyncio.create_task(hold(admission, release, log, "holder"))
    await settle()
    waiter = asyncio.create_task(hold(admission, release, log, "waiter"))
    await settle()
    assert admission.queued == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (admission.running, admission.queued) == (1, 0)
    release.set()
    await holder
    assert log == ["holder"]
    assert (admission.running, admission.queued) == (0, 0)
