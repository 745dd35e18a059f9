"""BackendPool: one guard per backend shared by every chain, opened once, and the read-only
snapshot the metrics endpoint will scrape. In-process models only; HTTP is test_router's."""

from __future__ import annotations

import pytest

from personae.core.breaker import BreakerState
from personae.core.types import ChatRequest
from personae.errors import BackendUnavailable, ConfigurationError
from personae.llm.guard import BackendLimits
from personae.llm.pool import BackendPool
from personae.llm.retry import RetryPolicy
from personae.llm.router import RoutedChatModel
from personae.testing import FakeChatModel

from .routing_rig import HELLO, ManualTime, collect, text_of


class Counted(FakeChatModel):
    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.opened = 0
        self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1


def pool_of(*names: str, **limits: BackendLimits) -> tuple[BackendPool, dict[str, Counted]]:
    models = {name: Counted(name) for name in names}
    time = ManualTime()
    return BackendPool(
        models, limits=limits, retry=RetryPolicy(retries=0), time=time.keeper
    ), models


async def test_chains_share_one_guard_per_backend_and_are_built_once() -> None:
    pool, _ = pool_of("a", "b")
    ab, ba = pool.chain(("a", "b")), pool.chain(("b", "a"))
    assert pool.chain(("a", "b")) is ab
    assert ab.chain[0] is ba.chain[1] is pool.guards["a"]
    with pytest.raises(ConfigurationError, match="unknown backend"):
        pool.chain(("a", "zzz"))


async def test_a_backend_opens_once_and_closes_with_its_last_chain() -> None:
    pool, models = pool_of("a", "b")
    async with pool.chain(("a", "b")):
        async with pool.chain(("a",)):
            assert models["a"].opened == 1
        assert models["a"].closed == 0
    assert (models["a"].closed, models["b"].closed) == (1, 1)


async def test_a_backend_without_deadlines_or_limits_just_streams() -> None:
    unbounded = BackendLimits(first_token_timeout_s=None, total_timeout_s=None)
    pool, models = pool_of("a", a=unbounded)
    models["a"].enqueue("No limits here.")
    assert text_of(await collect(pool.chain(("a",)))) == "No limits here."


async def test_snapshot_reports_breakers_counters_and_chains() -> None:
    pool, models = pool_of("a", "b", a=BackendLimits(failure_threshold=1))
    models["a"].enqueue("never", error=BackendUnavailable("down", backend="a"))
    models["b"].enqueue("Hi there.")
    chain = pool.chain(("a", "b"))

    assert text_of(await collect(chain, HELLO)) == "Hi there."
    assert text_of(await collect(chain, ChatRequest(messages=HELLO.messages))) != ""

    snap = pool.snapshot()
    a, b = snap.backends["a"], snap.backends["b"]
    assert a.breaker.state is BreakerState.OPEN
    assert (a.calls, a.failures, a.skipped_open, dict(a.errors)) == (
        1,
        1,
        1,
        {"backend_unavailable": 1},
    )
    assert (b.calls, b.successes, b.in_flight) == (2, 2, 0)
    assert b.duration.count == 2
    assert b.first_token.mean_s is not None
    assert snap.chains["a>b"].turns == 2
    assert snap.chains["a>b"].failovers == 2
    with pytest.raises(TypeError):
        snap.backends["c"] = a  # type: ignore[index]


def test_a_chain_needs_a_backend() -> None:
    with pytest.raises(ConfigurationError):
        RoutedChatModel([])
