"""The deadlines of one guarded call (llm/guard.py): one timer per deadline cancels the read
under way, and only a cancel of its own becomes a ``BackendTimeout``. In-process models, real
event loop time (short deadlines)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from personae.errors import BackendTimeout
from personae.llm.guard import BackendLimits, GuardedBackend
from personae.testing import FakeChatModel

from .routing_rig import HELLO


def guarded(model: FakeChatModel, **limits: float | None) -> GuardedBackend:
    return GuardedBackend(model, BackendLimits(**limits))  # type: ignore[arg-type]


async def read_all(backend: GuardedBackend) -> list[str]:
    reply = await backend.start(HELLO, queue=True)
    async with aclosing(reply.chunks()) as chunks:
        return [chunk.text async for chunk in chunks]


async def test_a_fast_reply_under_both_deadlines_arrives_whole_and_counts_a_success() -> None:
    model = FakeChatModel()
    model.enqueue(["a", " b", " c", " d"])
    backend = guarded(model, first_token_timeout_s=5, total_timeout_s=10)
    assert await read_all(backend) == ["a", " b", " c", " d", ""]
    assert (backend.stats.successes, backend.stats.failures, backend.stats.in_flight) == (1, 0, 0)


async def test_a_stall_midway_is_cut_at_the_total_deadline() -> None:
    model = FakeChatModel()
    model.enqueue(["one", " two", " three"], delay_s=0.4)
    backend = guarded(model, first_token_timeout_s=5, total_timeout_s=0.2)
    reply = await backend.start(HELLO, queue=True)
    got: list[str] = []
    with pytest.raises(BackendTimeout, match=r"the reply took longer than 0\.2 s"):
        async with aclosing(reply.chunks()) as chunks:
            async for chunk in chunks:
                got.append(chunk.text)
    assert got == ["one"]
    assert (backend.stats.failures, backend.stats.in_flight) == (1, 0)
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the timer's cancel was taken back


async def test_a_slow_first_token_is_a_first_token_timeout() -> None:
    model = FakeChatModel()
    model.enqueue(["late"], first_token_delay_s=5)
    backend = guarded(model, first_token_timeout_s=0.1, total_timeout_s=10)
    with pytest.raises(BackendTimeout, match=r"no text within 0\.1 s"):
        await backend.start(HELLO, queue=True)
    assert backend.stats.failures == 1


async def test_a_caller_cancelled_mid_read_stays_cancelled_not_timed_out() -> None:
    model = FakeChatModel()
    model.enqueue(["one", " two"], delay_s=30)
    backend = guarded(model, first_token_timeout_s=5, total_timeout_s=60)
    reading = asyncio.create_task(read_all(backend))
    await asyncio.sleep(0.05)  # the first chunk is in, the second is being waited for
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    # Not the backend's fault: no failure counted, the call ended, nothing left scheduled.
    assert (backend.stats.failures, backend.stats.successes, backend.stats.in_flight) == (0, 0, 0)


async def test_a_consumer_slower_than_the_deadline_times_out_at_its_next_read() -> None:
    model = FakeChatModel()
    model.enqueue(["one", " two", " three"], delay_s=0.05)
    backend = guarded(model, first_token_timeout_s=5, total_timeout_s=0.2)
    reply = await backend.start(HELLO, queue=True)
    got: list[str] = []
    with pytest.raises(BackendTimeout, match=r"the reply took longer than 0\.2 s"):
        async with aclosing(reply.chunks()) as chunks:
            async for chunk in chunks:
                got.append(chunk.text)
                await asyncio.sleep(0.3)  # past the deadline before asking for more
    assert got == ["one"]
