"""A call cancelled while it waits for a pooled connection ends cancelled, even when the
connection arrives at the same moment: psycopg_pool waits with ``asyncio.wait_for``, which on
Python 3.11 can drop such a cancel, and a task that carries on after its cancel makes a
shutdown wait for it (the retention task did: supervisor.close hung)."""

from __future__ import annotations

import asyncio

from personae.storage.postgres import PostgresDatabase
from personae.storage.postgres.database import Conn


async def test_a_cancel_that_meets_the_connection_is_not_lost(pg_url: str) -> None:
    async with PostgresDatabase(pg_url, min_size=1, max_size=1) as db:
        carried_on = 0
        for round_ in range(100):
            release = asyncio.Event()

            async def hold(conn: Conn, release: asyncio.Event = release) -> None:
                await release.wait()

            async def select(conn: Conn) -> int:
                await conn.execute("SELECT 1")
                return 1

            holder = asyncio.create_task(db.read("hold the only connection", hold))
            await asyncio.sleep(0.002)
            waiter = asyncio.create_task(db.read("wait for it", select))
            await asyncio.sleep(0.002)
            release.set()
            for _ in range(round_ % 8):  # the cancel lands at a different step each round
                await asyncio.sleep(0)
            waiter.cancel()
            await holder
            try:
                await waiter
            except asyncio.CancelledError:
                continue
            carried_on += 1
        assert carried_on == 0
        assert await db.read("read after", select) == 1  # the pool lost no connection
