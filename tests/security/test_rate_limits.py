"""Rate limits on the ``limits`` library: requests and tokens, per key and per end user."""

from __future__ import annotations

import pytest

from personae.core.observe import TurnObserver
from personae.core.types import AccessRole, Caller, Principal
from personae.errors import RateLimited
from personae.security.gate import CallerGate, current_caller
from personae.security.rate_limits import SlidingWindowLimiter
from personae.settings import RateLimitSettings, RoleLimitSettings

pytestmark = pytest.mark.usefixtures("one_rate_window")


async def test_the_limiter_admits_up_to_the_rate_then_says_how_long_to_wait() -> None:
    limiter = SlidingWindowLimiter(3, namespace="t")
    assert [await limiter.hit("k") for _ in range(3)] == [None, None, None]
    wait = await limiter.hit("k")
    assert wait is not None
    assert 0 < wait <= 60
    assert await limiter.hit("other") is None  # budgets are per key


async def test_spending_takes_what_is_left_and_a_zero_cost_hit_only_checks() -> None:
    tokens = SlidingWindowLimiter(100, namespace="tokens")
    assert await tokens.hit("k", 0) is None
    await tokens.spend("k", 60)
    assert await tokens.hit("k", 0) is None
    await tokens.spend("k", 500)  # more than is left: usage that already happened
    assert await tokens.hit("k", 0) is not None


class Rejections(TurnObserver):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def request_rejected(self, reason: str) -> None:
        self.reasons.append(reason)


def gate(observer: TurnObserver | None = None) -> CallerGate:
    settings = RateLimitSettings(
        user=RoleLimitSettings(requests_per_minute=2, tokens_per_minute=100),
        service=RoleLimitSettings(requests_per_minute=5),
    )
    return CallerGate.from_settings(settings, observer=observer)


ALICE = Principal("alice", role=AccessRole.USER, key_id="aaaaaaaa")
BOT = Principal("bot", role=AccessRole.SERVICE, tenant="acme", key_id="bbbbbbbb")
ROOT = Principal("root", role=AccessRole.ADMIN, key_id="cccccccc")


async def test_requests_per_minute_per_role() -> None:
    rejections = Rejections()
    g = gate(rejections)
    await g.admit(Caller(ALICE, "alice"))
    await g.admit(Caller(ALICE, "alice"))
    with pytest.raises(RateLimited) as caught:
        await g.admit(Caller(ALICE, "alice"))
    assert caught.value.retry_after > 0
    assert rejections.reasons == ["rate_limited"]
    for _ in range(20):  # admins are unlimited by default
        await g.admit(Caller(ROOT, "alice"))


async def test_a_service_is_limited_per_end_user_too() -> None:
    g = gate()
    await g.admit(Caller(BOT, "acme/u1"))
    await g.admit(Caller(BOT, "acme/u1"))
    with pytest.raises(RateLimited):
        await g.admit(Caller(BOT, "acme/u1"))  # u1 spent the user budget (2/min)
    await g.admit(Caller(BOT, "acme/u2"))  # the service's own budget (5/min) has room
    await g.admit(Caller(BOT, "acme/u3"))
    with pytest.raises(RateLimited):
        await g.admit(Caller(BOT, "acme/u4"))  # now the service's budget is spent


async def test_tokens_per_minute_refuse_the_next_request() -> None:
    g = gate()
    caller = Caller(ALICE, "alice")
    await g.admit(caller)
    await g.spend_tokens(caller, 150)
    with pytest.raises(RateLimited):
        await g.admit(caller)


async def test_admit_remembers_the_caller_for_the_task() -> None:
    caller = Caller(ALICE, "alice", client="10.0.0.1")
    await gate().admit(caller)
    assert current_caller.get() == caller
