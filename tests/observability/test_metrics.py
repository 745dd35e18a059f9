"""``/metrics`` on a live server: turns run, and the counters and gauges move with them.

Every scrape goes through the Prometheus text parser, as a Prometheus server would read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.app import build_app
from personae.errors import BackendUnavailable
from personae.observability.metrics import Metrics
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.observability.conftest import Scrape, eventually, scrape
from tests.transports.conftest import Server, make_settings
from tests.transports.ws_client import WsClient

ARIA = {"character": "aria", "text": "Where to, navigator?"}
ARIA_MESSAGE = {"role": "user", "content": "Tell me a long story."}
FAKE = {"character": "aria", "backend": "fake"}


def ask(url: str, text: str = "Where to?", *, stream: bool = False) -> httpx.Response:
    body = {
        "model": "aria",
        "user": "sam",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)


async def ascrape(url: str) -> Scrape:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    return Scrape.parse(response.text)


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[Server]:
    # One failure opens the breaker, and it stays open for the test.
    settings = make_settings(tmp_path, llm={"breaker": {"failure_threshold": 1}})
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


def test_a_fresh_server_exposes_every_family_with_its_type(metered: Server) -> None:
    before = scrape(metered.url)
    assert before.value("personae_backend_circuit_state", backend="fake", state="closed") == 1
    assert before.value("personae_backend_circuit_state", backend="fake", state="open") == 0
    assert before.value("personae_websocket_connections") == 0
    assert before.value("personae_turns_running") == 0
    assert before.value("personae_turns_queued") == 0
    assert before.types["personae_turns"] == "counter"
    assert before.types["personae_turn_duration_seconds"] == "histogram"
    assert before.types["personae_backend_calls"] == "counter"
    assert before.types["personae_backend_first_token_seconds"] == "summary"
    assert before.types["personae_backend_circuit_state"] == "gauge"
    assert "personae_process_resident_memory_bytes" in before.names()
    assert all(name.startswith("personae_") for name in before.names())


def test_a_successful_turn_moves_the_turn_token_and_backend_counters(metered: Server) -> None:
    metered.model.enqueue("Set course for Vesta.")
    assert ask(metered.url).status_code == 200
    after = scrape(metered.url)
    assert after.value("personae_turns_total", **FAKE, outcome="ok") == 1
    assert after.value("personae_turn_duration_seconds_count", **FAKE, outcome="ok") == 1
    assert after.value("personae_turn_duration_seconds_sum", **FAKE, outcome="ok") > 0
    assert after.value("personae_turn_first_token_seconds_count", **FAKE) == 1
    assert after.value("personae_tokens_out_total", **FAKE) == 4  # words, as the fake counts
    assert after.value("personae_tokens_in_total", **FAKE) > 0
    assert after.value("personae_backend_calls_total", backend="fake") == 1
    assert after.value("personae_backend_successes_total", backend="fake") == 1
    assert after.value("personae_backend_reply_seconds_count", backend="fake") == 1
    assert after.value("personae_route_turns_total", chain="fake") == 1

    metered.model.enqueue("And again.")
    assert ask(metered.url, stream=True).status_code == 200
    again = scrape(metered.url)
    assert again.value("personae_turns_total", **FAKE, outcome="ok") == 2
    assert again.value("personae_tokens_out_total", **FAKE) == 6


def test_backend_failures_count_by_outcome_and_code_and_open_the_breaker(metered: Server) -> None:
    metered.model.enqueue("Half a", error=BackendUnavailable("boom", backend="fake"))
    assert ask(metered.url).status_code == 503
    failed = scrape(metered.url)
    assert failed.value("personae_turns_total", **FAKE, outcome="failed") == 1
    assert failed.value("personae_turns_total", **FAKE, outcome="ok") == 0
    assert failed.value("personae_backend_failures_total", backend="fake") == 1
    errors = failed.value(
        "personae_backend_errors_total", backend="fake", code="backend_unavailable"
    )
    assert errors == 1
    assert failed.value("personae_backend_circuit_state", backend="fake", state="open") == 1
    assert failed.value("personae_backend_circuit_state", backend="fake", state="closed") == 0
    assert failed.value("personae_backend_circuit_opened_total", backend="fake") == 1
    assert failed.value("personae_tokens_in_total", **FAKE) == 0  # no complete reply

    assert ask(metered.url).status_code == 503  # passed over: the circuit is open
    skipped = scrape(metered.url)
    reason = {"backend": "fake", "reason": "circuit_open"}
    assert skipped.value("personae_backend_skipped_total", **reason) == 1
    assert skipped.value("personae_backend_calls_total", backend="fake") == 1
    assert skipped.value("personae_route_exhausted_total", chain="fake") == 2
    assert skipped.value("personae_turns_total", **FAKE, outcome="failed") == 2


def test_a_failure_midway_is_an_incomplete_turn(metered: Server) -> None:
    metered.model.enqueue(
        "one two three four", error=BackendUnavailable("cut", backend="fake"), error_after_tokens=2
    )
    response = ask(metered.url, stream=True)
    assert response.status_code == 200  # streaming had begun
    assert '"error"' in response.text
    after = scrape(metered.url)
    assert after.value("personae_turns_total", **FAKE, outcome="incomplete") == 1
    assert after.value("personae_turn_first_token_seconds_count", **FAKE) == 1
    assert after.value("personae_backend_midway_failures_total", backend="fake") == 1


async def test_overload_rejections_and_running_turns(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime={"max_concurrent_turns": 1, "max_queued_turns": 0})
    model = FakeChatModel()
    model.enqueue("a slow and steady reply", delay_s=0.2)
    with live_server(build_app(settings, backends={"fake": model})) as url:
        first, _ = await WsClient.open(url, user="u1")
        second, _ = await WsClient.open(url, user="u2")
        accepted = await first.request("message.send", ARIA)
        assert accepted["ok"] is True
        refused = await second.request("message.send", ARIA)
        assert refused["error"]["code"] == "overloaded"
        during = await ascrape(url)
        assert during.value("personae_rejections_total", reason="overloaded") == 1
        assert during.value("personae_turns_running") == 1
        assert during.value("personae_conversation_sessions") == 1
        assert during.value("personae_websocket_connections") == 2
        await first.events_until("message.done", conversation=accepted["result"]["conversation"])
        await first.close()
        await second.close()

        async def settled() -> Scrape:
            while True:
                now = await ascrape(url)
                if now.value("personae_turns_running") == 0:
                    return now
                await asyncio.sleep(0.02)

        after = await asyncio.wait_for(settled(), 5)
        assert after.value("personae_turns_total", **FAKE, outcome="ok") == 1


async def test_rate_limited_ws_requests_are_counted(metered: Server) -> None:
    client, _ = await WsClient.open(metered.url, user="sam")
    for _ in range(45):  # the burst is 40
        await client.request_frame("ping")
    answers: list[dict[str, Any]] = []
    while len(answers) < 45:  # refusals may overtake answers: read them as they come
        frame = await client.next_frame()
        if frame["type"] == "res":
            answers.append(frame)
    limited = sum(1 for a in answers if not a["ok"] and a["error"]["code"] == "rate_limited")
    assert limited >= 1
    after = await ascrape(metered.url)
    assert after.value("personae_rejections_total", reason="rate_limited") == limited
    await client.close()


async def test_the_connections_gauge_follows_websockets_opening_and_closing(
    metered: Server,
) -> None:
    client, _ = await WsClient.open(metered.url, user="sam")
    other, _ = await WsClient.open(metered.url, user="kim")
    assert (await ascrape(metered.url)).value("personae_websocket_connections") == 2
    await client.close()
    await other.close()

    async def drained() -> bool:
        for _ in range(250):
            if (await ascrape(metered.url)).value("personae_websocket_connections") == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    assert await drained()


def test_cancelled_turns_are_counted_when_the_client_leaves(metered: Server) -> None:
    metered.model.enqueue("one two three four five six seven eight", delay_s=0.2)
    body = {"model": "aria", "user": "sam", "stream": True, "messages": [ARIA_MESSAGE]}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{metered.url}/v1/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            if '"content":"one"' in line.replace(" ", ""):
                break
    key = {**FAKE, "outcome": "cancelled"}
    eventually(lambda: scrape(metered.url).value("personae_turns_total", **key) == 1)


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics={"enabled": False})
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        response = httpx.get(f"{url}/metrics")
        assert response.status_code == 404
        assert ask(url).status_code == 200  # turns run unobserved


def test_each_runtime_has_its_own_registry() -> None:
    # The global default registry would refuse the second set of the same names.
    first, second = Metrics(), Metrics()
    first.observer.request_rejected("busy")
    text = Scrape.parse(second.exposition()[0].decode())
    assert text.value("personae_rejections_total", reason="busy") == 0
    assert (
        Scrape.parse(first.exposition()[0].decode()).value(
            "personae_rejections_total", reason="busy"
        )
        == 1
    )
