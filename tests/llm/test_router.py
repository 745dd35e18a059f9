"""RoutedChatModel over real HTTP: OpenAI-compatible backends on fault-injecting servers on
127.0.0.1. Time that matters to breakers and backoffs is moved by hand (``ManualTime``); the
only real waits are a backend's own time limits, each far from the scripted delay."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest

from personae.core.breaker import BreakerState
from personae.errors import BackendProtocolError, BackendTimeout, BackendUnavailable
from personae.llm.cache import ResponseCache
from personae.llm.guard import GuardedBackend
from personae.llm.retry import RetryPolicy
from personae.llm.router import RoutedChatModel

from .fake_openai_server import Behaviour, Fail, FakeOpenAIServer, Hang, Raw, Reply
from .routing_rig import EXACT, ManualTime, collect, fake_servers, guarded, text_of

NO_RETRIES = RetryPolicy(retries=0)


@dataclass
class Rig:
    a: FakeOpenAIServer
    b: FakeOpenAIServer
    c: FakeOpenAIServer
    time: ManualTime
    stack: AsyncExitStack

    def backend(self, name: str, **limits: object) -> GuardedBackend:
        server = {"a": self.a, "b": self.b, "c": self.c}[name]
        return guarded(name, server, self.time, **limits)

    async def chain(
        self,
        *backends: GuardedBackend,
        retry: RetryPolicy = NO_RETRIES,
        cache: ResponseCache | None = None,
    ) -> RoutedChatModel:
        model = RoutedChatModel(backends, retry=retry, cache=cache, time=self.time.keeper)
        return await self.stack.enter_async_context(model)

    def hits(self) -> tuple[int, int, int]:
        return len(self.a.requests), len(self.b.requests), len(self.c.requests)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FakeOpenAIServer]]:
    with fake_servers(3) as running:
        yield running


@pytest.fixture
async def rig(servers: list[FakeOpenAIServer]) -> AsyncIterator[Rig]:
    for server in servers:
        server.reset()
    async with AsyncExitStack() as stack:
        yield Rig(*servers, time=ManualTime(), stack=stack)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --- the happy path -----------------------------------------------------------------------------


async def test_the_primary_answers_and_the_fallback_is_left_alone(rig: Rig) -> None:
    rig.a.enqueue(Reply(["Hel", "lo", "!"], usage=(5, 3)))
    model = await rig.chain(rig.backend("a"), rig.backend("b"))

    chunks = await collect(model)

    assert text_of(chunks) == "Hello!"
    assert chunks[-1].finish_reason == "stop"
    assert rig.hits() == (1, 0, 0)
    assert model.name == "a>b"
    snap = model.chain[0].snapshot()
    assert (snap.calls, snap.successes, snap.failures, snap.in_flight) == (1, 1, 0, 0)
    assert snap.first_token.count == snap.duration.count == 1


# --- failing over before anything reaches the user --------------------------------------------


@pytest.mark.parametrize(
    ("fault", "limits"),
    [
        pytest.param(Fail(429, "slow down"), {}, id="429"),
        pytest.param(Fail(500), {}, id="500"),
        pytest.param(Fail(503), {}, id="503"),
        pytest.param(Fail(404, "no such model"), {}, id="404-misconfigured"),
        pytest.param(Hang(20), {"first_token_timeout_s": 0.3}, id="no-answer"),
        pytest.param(
            Reply(first_token_delay_s=20), {"first_token_timeout_s": 0.3}, id="slow-first-token"
        ),
        pytest.param(Reply(["x", "y"], break_after=0), {}, id="broken-before-text"),
        pytest.param(Raw(b"data: {not json\n\n"), {}, id="malformed-json"),
        pytest.param(Reply([]), {}, id="empty-completion"),
        pytest.param(Reply(["  ", "\n"]), {}, id="blank-completion"),
        pytest.param(Reply(plain_json=True), {}, id="plain-json-instead-of-a-stream"),
    ],
)
async def test_a_failure_before_the_first_token_fails_over_to_the_fallback(
    rig: Rig, fault: Behaviour, limits: dict[str, object]
) -> None:
    rig.a.enqueue(fault)
    rig.b.enqueue(Reply(["From", " the", " fallback"]))
    model = await rig.chain(rig.backend("a", **limits), rig.backend("b"))

    chunks = await collect(model)

    assert text_of(chunks) == "From the fallback"
    assert rig.hits() == (1, 1, 0)
    assert rig.time.sleeps == []  # failing over is immediate: no backoff in between
    primary = model.chain[0].snapshot()
    assert (primary.failures, primary.successes, primary.in_flight) == (1, 0, 0)
    assert model.stats.failovers == 1


async def test_connection_refused_fails_over(rig: Rig) -> None:
    model = await rig.chain(guarded("gone", closed_port_url(), rig.time), rig.backend("b"))
    assert text_of(await collect(model)) == "Hello there!"
    assert model.chain[0].snapshot().errors == {"backend_unavailable": 1}


async def test_backends_are_tried_in_chain_order(rig: Rig) -> None:
    rig.a.enqueue(Fail(500))
    rig.b.enqueue(Fail(429))
    rig.c.enqueue(Reply(["third"]))
    model = await rig.chain(rig.backend("a"), rig.backend("b"), rig.backend("c"))

    assert text_of(await collect(model)) == "third"
    assert rig.hits() == (1, 1, 1)
    assert [s.calls for s in (b.snapshot() for b in model.chain)] == [1, 1, 1]


# --- errors that no other backend would fix ---------------------------------------------------


@pytest.mark.parametrize(
    "message", ["stop must be a list", "This model's maximum context_length_exceeded"]
)
async def test_a_bad_request_is_neither_retried_nor_failed_over(rig: Rig, message: str) -> None:
    rig.a.enqueue(Fail(400, message))
    model = await rig.chain(rig.backend("a"), rig.backend("b"), retry=RetryPolicy(retries=3))

    with pytest.raises(BackendProtocolError) as caught:
        await collect(model)

    assert caught.value.backend == "a"
    assert message in str(caught.value)
    assert rig.hits() == (1, 0, 0)
    primary = model.chain[0].snapshot()
    assert primary.failures == 0  # the backend did its job: the breaker does not count it
    assert primary.breaker.consecutive_failures == 0


# --- retries: backoff with jitter inside a budget ---------------------------------------------


async def test_retry_rounds_back_off_exponentially_up_to_the_retry_count(rig: Rig) -> None:
    rig.a.otherwise = Fail(503, "warming up")
    policy = RetryPolicy(retries=3, budget_s=100, backoff_initial_s=0.5, backoff_max_s=1.5)
    model = await rig.chain(rig.backend("a", failure_threshold=10), retry=policy)

    with pytest.raises(BackendUnavailable) as caught:
        await collect(model)

    assert rig.hits() == (4, 0, 0)  # one try and three retries
    assert rig.time.sleeps == [0.5, 1.0, 1.5]  # doubling windows, capped (jitter draws the top)
    # A lone backend's failure is reported as it failed.
    assert str(caught.value) == "backend 'a': HTTP 503: warming up"
    assert model.stats.retries == 3
    assert model.stats.exhausted == 1


async def test_the_time_budget_stops_retrying_before_the_count_does(rig: Rig) -> None:
    rig.a.otherwise = Fail(500)
    rig.time.attempt_cost_s = 1.0  # each round costs a second of (manual) time
    policy = RetryPolicy(retries=10, budget_s=2.0, backoff_initial_s=0.5, backoff_max_s=4)
    model = await rig.chain(rig.backend("a", failure_threshold=10), retry=policy)

    with pytest.raises(BackendUnavailable):
        await collect(model)

    # t=0 fail, wait 0.5 -> t=1.5 fail; the next wait (1.0) would start round 3 at 3.5 > 2.0
    assert rig.time.sleeps == [0.5]
    assert rig.hits() == (2, 0, 0)


async def test_a_retry_round_skips_backends_that_cannot_serve_the_request(rig: Rig) -> None:
    rig.a.otherwise = Fail(401, "bad key")
    rig.b.otherwise = Fail(500, "overloaded")
    policy = RetryPolicy(retries=2, budget_s=100)
    model = await rig.chain(
        rig.backend("a", failure_threshold=10), rig.backend("b", failure_threshold=10), retry=policy
    )

    with pytest.raises(BackendUnavailable) as caught:
        await collect(model)

    assert rig.hits() == (1, 3, 0)  # the misconfigured one once; the flaky one every round
    message = str(caught.value)
    assert message.startswith("backend 'a>b': no backend could answer; tried ")
    assert "a: HTTP 401: bad key" in message
    assert "b: HTTP 500: overloaded (3 attempts)" in message
    assert caught.value.context["tried"] == ["a", "b"]


async def test_a_retry_succeeds_once_the_backend_recovers(rig: Rig) -> None:
    rig.a.enqueue(Fail(503), Fail(429), Reply(["finally"]))
    model = await rig.chain(rig.backend("a"), retry=RetryPolicy(retries=3, budget_s=100))

    assert text_of(await collect(model)) == "finally"
    assert rig.hits() == (3, 0, 0)
    assert len(rig.time.sleeps) == 2
    assert model.stats.failovers == 0  # the same backend answered: a retry, not a failover


# --- everything down: the user-visible error ---------------------------------------------------


async def test_all_backends_down_names_every_backend_tried(rig: Rig) -> None:
    rig.a.enqueue(Fail(500, "model crashed"))
    gone = guarded("b", closed_port_url(), rig.time)
    model = await rig.chain(rig.backend("a"), gone)

    with pytest.raises(BackendUnavailable) as caught:
        await collect(model)

    message = str(caught.value)
    assert "a: HTTP 500: model crashed" in message
    assert "b: cannot reach" in message
    assert caught.value.backend == "a>b"


async def test_all_backends_timing_out_is_a_timeout(rig: Rig) -> None:
    rig.a.enqueue(Hang(20))
    rig.b.enqueue(Reply(first_token_delay_s=20))
    model = await rig.chain(
        rig.backend("a", first_token_timeout_s=0.2), rig.backend("b", first_token_timeout_s=0.2)
    )

    with pytest.raises(BackendTimeout) as caught:
        await collect(model)

    assert "a: no text within 0.2 s" in str(caught.value)
    assert "b: no text within 0.2 s" in str(caught.value)


# --- the circuit breaker -------------------------------------------------------------------------


async def test_breaker_opens_skips_the_backend_then_probes_and_closes(rig: Rig) -> None:
    rig.a.otherwise = Fail(500)
    rig.b.otherwise = Reply(["fallback"])
    primary = rig.backend("a", failure_threshold=2, reset_timeout_s=30)
    model = await rig.chain(primary, rig.backend("b"))

    for _ in range(2):
        assert text_of(await collect(model)) == "fallback"
    assert primary.breaker.state is BreakerState.OPEN
    assert rig.hits() == (2, 2, 0)

    assert text_of(await collect(model)) == "fallback"  # open: passed over, not called
    assert rig.hits() == (2, 3, 0)
    assert primary.snapshot().skipped_open == 1

    rig.time.now_s += 30  # half-open: one probe goes through, fails, and it opens again
    assert text_of(await collect(model)) == "fallback"
    assert rig.hits() == (3, 4, 0)
    assert primary.breaker.state is BreakerState.OPEN

    rig.time.now_s += 30
    rig.a.otherwise = Reply(["primary is back"])
    assert text_of(await collect(model)) == "primary is back"  # the probe succeeds
    assert primary.breaker.state is BreakerState.CLOSED
    assert rig.hits() == (4, 4, 0)
    assert primary.snapshot().breaker.opened_total == 2


async def test_every_breaker_open_is_unavailable_without_calling_anyone(rig: Rig) -> None:
    first, second = rig.backend("a", failure_threshold=1), rig.backend("b", failure_threshold=1)
    rig.a.enqueue(Fail(500))
    rig.b.enqueue(Fail(502))
    model = await rig.chain(first, second)
    with pytest.raises(BackendUnavailable):
        await collect(model)

    with pytest.raises(BackendUnavailable) as caught:
        await collect(model)

    assert str(caught.value) == (
        "backend 'a>b': no backend could answer; tried a: circuit open; b: circuit open"
    )
    assert rig.hits() == (1, 1, 0)


# --- once text has streamed, the chain is committed ------------------------------------------


async def test_a_stream_that_breaks_midway_is_raised_not_switched(rig: Rig) -> None:
    rig.a.enqueue(Reply(["one", " two", " three"], break_after=2))
    model = await rig.chain(rig.backend("a"), rig.backend("b"), retry=RetryPolicy(retries=2))
    received: list[str] = []

    with pytest.raises(BackendUnavailable) as caught:
        async for chunk in model.stream(EXACT):
            received.append(chunk.text)

    assert "".join(received) == "one two"
    assert caught.value.backend == "a"
    assert rig.hits() == (1, 0, 0)  # no second voice mid-reply, and no retry
    primary = model.chain[0].snapshot()
    assert (primary.failures, primary.midway_failures) == (1, 1)


async def test_a_reply_over_its_total_time_is_cut_and_reported(rig: Rig) -> None:
    rig.a.enqueue(Reply(["quick", " then", " slow"], token_delay_s=20))
    model = await rig.chain(rig.backend("a", total_timeout_s=1.5), rig.backend("b"))
    received: list[str] = []

    with pytest.raises(BackendTimeout, match=r"backend .a.: the reply took longer than 1.5 s"):
        async for chunk in model.stream(EXACT):
            received.append(chunk.text)

    assert received == ["quick"]
    assert rig.hits() == (1, 0, 0)


async def test_a_consumer_that_leaves_early_frees_the_backend(rig: Rig) -> None:
    rig.a.enqueue(Reply(["a", "b", "c"]))
    primary = rig.backend("a", max_concurrency=1, failure_threshold=1, reset_timeout_s=30)
    model = await rig.chain(primary)

    stream = model.stream(EXACT)
    assert (await anext(stream)).text.startswith("a")
    await stream.aclose()

    snap = primary.snapshot()
    assert (snap.in_flight, snap.failures, snap.successes) == (0, 0, 0)
    assert not primary.busy
    assert text_of(await collect(model)) == "Hello there!"


# --- concurrency limits ------------------------------------------------------------------------


async def test_a_busy_backend_spills_over_to_a_free_fallback(rig: Rig) -> None:
    rig.a.enqueue(Reply(["held", " open"], token_delay_s=0.3))  # " open" comes after "held"
    rig.b.enqueue(Reply(["spilled"]))
    primary = rig.backend("a", max_concurrency=1)
    model = await rig.chain(primary, rig.backend("b"))

    first = model.stream(EXACT)
    assert (await anext(first)).text == "held"  # the primary's only slot is taken

    assert text_of(await collect(model)) == "spilled"
    assert primary.snapshot().skipped_busy == 1
    assert text_of([c async for c in first]) == " open"
    assert rig.hits() == (1, 1, 0)


async def test_the_last_backend_queues_within_its_first_token_time(rig: Rig) -> None:
    rig.a.enqueue(Reply(["held"]))
    only = rig.backend("a", max_concurrency=1, first_token_timeout_s=0.3)
    model = await rig.chain(only)

    first = model.stream(EXACT)
    assert (await anext(first)).text == "held"

    with pytest.raises(BackendTimeout, match="no free slot"):
        await collect(model)
    assert only.busy
    await first.aclose()

    assert not only.busy  # the slot is free again
    assert only.breaker.state is BreakerState.CLOSED  # queueing is not the backend's fault
    assert only.snapshot().skipped_busy == 1


# --- the response cache and the primary's view of tokens ---------------------------------------


async def test_deterministic_requests_are_answered_from_the_cache(rig: Rig) -> None:
    rig.a.enqueue(Reply(["Four."]), Reply(["Still four."]), Reply(["Warm."]))
    model = await rig.chain(rig.backend("a"), cache=ResponseCache(max_entries=8))

    assert text_of(await collect(model, EXACT)) == "Four."
    assert text_of(await collect(model, EXACT)) == "Four."  # temperature 0: cached
    assert text_of(await collect(model)) == "Still four."  # temperature 0.8: never cached
    assert rig.hits() == (2, 0, 0)
    assert model.stats.cache_hits == 1


async def test_tokens_and_context_come_from_the_primary(rig: Rig) -> None:
    model = await rig.chain(rig.backend("a"), rig.backend("b"))
    primary = model.chain[0].model
    assert model.count_tokens("some words here") == primary.count_tokens("some words here")
    assert model.context_window == primary.context_window
