import asyncio

from personae.coordination.local import LocalConversationLock


async def test_holders_of_one_key_run_one_at_a_time_in_arrival_order() -> None:
    lock = LocalConversationLock()
    order: list[str] = []
    inside = 0
    most_inside = 0

    async def turn(name: str) -> None:
        nonlocal inside, most_inside
        async with lock.hold("conv"):
            inside += 1
            most_inside = max(most_inside, inside)
            order.append(name)
            await asyncio.sleep(0.01)
            inside -= 1

    async with asyncio.TaskGroup() as group:
        for i in range(5):
            group.create_task(turn(f"t{i}"))
            await asyncio.sleep(0)  # fix the arrival order
    assert order == ["t0", "t1", "t2", "t3", "t4"]
    assert most_inside == 1


async def test_different_keys_do_not_wait_for_each_other() -> None:
    lock = LocalConversationLock()
    async with lock.hold("a"):
        await asyncio.wait_for(_enter(lock, "b"), timeout=1)


async def _enter(lock: LocalConversationLock, key: str) -> None:
    async with lock.hold(key):
        pass


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
