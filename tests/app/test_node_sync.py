"""NodeSync over a real Redis bus: a change announced by one node reloads every other node,
never the one that made it, and a failing reload does not stop the next."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from redis.asyncio import Redis

from personae.app.node_sync import CHARACTERS, EXPERIMENTS, NodeSync
from personae.coordination.redis_bus import RedisEventBus
from tests.redis_server import RedisServer


class Reloads:
    def __init__(self, *, fail_first: bool = False) -> None:
        self.done: list[str] = []
        self.seen = asyncio.Event()
        self._fail_first = fail_first

    def of(self, what: str) -> Callable[[], Awaitable[None]]:
        async def reload() -> None:
            if self._fail_first:
                self._fail_first = False
                raise RuntimeError("the folder could not be read")
            self.done.append(what)
            self.seen.set()

        return reload


@asynccontextmanager
async def node(url: str, prefix: str, name: str, reloads: Reloads) -> AsyncIterator[NodeSync]:
    async with AsyncExitStack() as stack:
        client = Redis.from_url(url)
        stack.push_async_callback(client.aclose)
        bus = await stack.enter_async_context(RedisEventBus(client, prefix=prefix))
        sync = NodeSync(bus, name, {k: reloads.of(k) for k in (CHARACTERS, EXPERIMENTS)})
        listening = asyncio.create_task(sync.listen())
        await asyncio.sleep(0.1)  # subscribed
        try:
            yield sync
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)


async def test_a_change_reloads_the_other_nodes_and_not_its_own(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    on_a, on_b = Reloads(), Reloads(fail_first=True)
    async with (
        node(redis_server.url, prefix, "a", on_a) as a,
        node(redis_server.url, prefix, "b", on_b),
    ):
        await a.announce(CHARACTERS)  # b's first reload fails: logged, and b goes on
        await a.announce("settings.unknown")  # logged and skipped
        a.announcer(EXPERIMENTS)()  # as CharacterFolder.on_change calls it
        await asyncio.wait_for(on_b.seen.wait(), timeout=5)
        await asyncio.sleep(0.2)
    assert on_b.done == [EXPERIMENTS]
    assert on_a.done == []
