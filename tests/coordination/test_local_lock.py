"""What only the in-process lock promises; the port's contract is test_lock_contract.py."""

import asyncio

from personae.coordination.local import LocalConversationLock


async def test_locks_are_forgotten_when_nobody_holds_them() -> None:
    lock = LocalConversationLock()
    async with lock.hold("a"):
        assert len(lock) == 1
    assert len(lock) == 0


async def test_a_cancelled_waiter_releases_its_place() -> None:
    lock = LocalConversationLock()
    async with lock.hold("a"):
        waiter = asyncio.create_task(_enter(lock, "a"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    assert len(lock) == 0
    await asyncio.wait_for(_enter(lock, "a"), timeout=1)


async def _enter(lock: LocalConversationLock, key: str) -> None:
    async with lock.hold(key):
        pass
