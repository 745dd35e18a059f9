"""Rate limits with ``coordination: redis``: every node counts against one budget, and a
Redis that cannot be reached admits rather than refusing everyone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from personae.app.coordination import rate_limit_storage, redis_client
from personae.core.types import AccessRole, Caller, Principal
from personae.errors import RateLimited
from personae.security.gate import CallerGate
from personae.settings import RateLimitSettings, RoleLimitSettings
from tests.redis_server import RedisServer, free_port

ALICE = Caller(Principal("alice", role=AccessRole.USER, key_id="aaaaaaaa"), user="alice")
LIMITS = RateLimitSettings(user=RoleLimitSettings(requests_per_minute=3))

pytestmark = pytest.mark.usefixtures("one_rate_window")


@asynccontextmanager
async def node_gate(url: str, prefix: str) -> AsyncIterator[CallerGate]:
    """A node's gate, as the runtime makes it (app/coordination.py)."""
    client = redis_client(url)
    try:
        storage = rate_limit_storage(client, url, prefix=prefix)
        yield CallerGate.from_settings(LIMITS, storage=storage)
    finally:
        await client.aclose()


async def test_two_nodes_share_one_budget(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    async with (
        node_gate(redis_server.url, prefix) as node_a,
        node_gate(redis_server.url, prefix) as node_b,
    ):
        await node_a.admit(ALICE)
        await node_b.admit(ALICE)
        await node_a.admit(ALICE)
        with pytest.raises(RateLimited) as refused:
            await node_b.admit(ALICE)  # the fourth in the minute, wherever it arrives
    assert refused.value.retry_after is not None
    assert 0 < refused.value.retry_after <= 60


async def test_an_unreachable_redis_admits_and_does_not_raise() -> None:
    async with node_gate(f"redis://127.0.0.1:{free_port()}/0", "t") as gate:
        for _ in range(5):  # over the budget: nothing counts while Redis is away
            await gate.admit(ALICE)
