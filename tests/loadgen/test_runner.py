"""The load generator end to end against real servers: the fake backend directly (HTTP, both
loops, faults, timeouts, back-pressure) and a Personae app in front of it (WebSocket and HTTP)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from personae.app import build_app
from personae.fakellm import FakeLLM, FakeLLMConfig, FaultRates, ReplyLengths
from personae.loadgen import BenchConfig, run_bench
from personae.settings import Settings
from tests.live_server import live_server

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"


@pytest.fixture
def fake_url() -> Iterator[str]:
    config = FakeLLMConfig(tokens_per_s=500, lengths=ReplyLengths.parse("fixed:5"))
    with live_server(FakeLLM(config)) as url:  # type: ignore[arg-type]  # any ASGI app serves
        yield url


def _ordered(summary: dict[str, Any]) -> bool:
    keys = ("p50", "p90", "p99", "p99.9", "max")
    values = [summary[k] for k in keys]
    return all(a <= b for a, b in itertools.pairwise(values))


async def test_open_loop_over_http_streams_and_measures(fake_url: str) -> None:
    config = BenchConfig(url=fake_url, rate=40, duration_s=1.0, server_pid=os.getpid(), seed=3)
    report = await run_bench(config)
    turns = report["turns"]
    assert report["characters"] == ["fake"]  # from /v1/models
    assert turns["completed"] >= 20
    assert turns["failed"] == 0
    assert report["errors"] == {}
    assert report["added_latency_ms"]["count"] == turns["completed"]
    assert report["added_ttft_ms"]["count"] == turns["completed"]
    for name in ("latency_ms", "ttft_ms", "added_latency_ms", "backend_ms"):
        assert _ordered(report[name]), name
    assert report["backend_ms"]["p50"] >= 7  # 5 tokens at 500/s: 8 ms, timers wake within 1 ms
    assert report["throughput"]["tokens_per_s"] == pytest.approx(
        5 * report["throughput"]["turns_per_s"], rel=0.01
    )
    assert report["server"]["cpu_cores"] >= 0
    assert report["server"]["rss_mib_peak"] > 10


async def test_closed_loop_keeps_each_user_to_one_turn_at_a_time() -> None:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=200, lengths=ReplyLengths.parse("fixed:4")))
    with live_server(fake) as url:  # type: ignore[arg-type]
        config = BenchConfig(url=url, users=3, think_s=0.01, duration_s=1.0)
        report = await run_bench(config)
    assert report["turns"]["completed"] > 10
    assert report["errors"] == {}
    assert fake.stats.peak_active == 3  # three users, never two turns of one at once


async def test_whole_replies_have_their_first_content_at_their_end(fake_url: str) -> None:
    config = BenchConfig(url=fake_url, users=2, duration_s=0.5, stream=False)
    report = await run_bench(config)
    assert report["turns"]["completed"] > 2
    assert report["ttft_ms"]["p50"] == report["latency_ms"]["p50"]


async def test_errors_are_counted_by_kind() -> None:
    faults = FaultRates.parse(["429=0.3", "disconnect=0.3"])
    config = FakeLLMConfig(tokens_per_s=0, lengths=ReplyLengths.parse("fixed:6"), faults=faults)
    with live_server(FakeLLM(config)) as url:  # type: ignore[arg-type]
        report = await run_bench(BenchConfig(url=url, rate=60, duration_s=1.0, seed=5))
    turns = report["turns"]
    assert set(report["errors"]) == {"http_429", "disconnected"}
    assert turns["completed"] + turns["failed"] == turns["started"]
    assert sum(report["errors"].values()) == turns["failed"]
    assert turns["completed"] > 0


async def test_a_turn_that_hangs_is_cut_at_the_timeout() -> None:
    config = FakeLLMConfig(faults=FaultRates(timeout=1), hang_s=30)
    with live_server(FakeLLM(config)) as url:  # type: ignore[arg-type]
        bench = BenchConfig(url=url, users=2, duration_s=0.5, turn_timeout_s=0.3)
        report = await run_bench(bench)
    assert report["turns"]["completed"] == 0
    assert report["errors"] == {"timeout": report["turns"]["started"]}


async def test_arrivals_beyond_max_in_flight_are_dropped_not_queued() -> None:
    config = FakeLLMConfig(first_token_s=0.5, lengths=ReplyLengths.parse("fixed:1"))
    with live_server(FakeLLM(config)) as url:  # type: ignore[arg-type]
        bench = BenchConfig(url=url, rate=50, duration_s=0.5, max_in_flight=2)
        report = await run_bench(bench)
    assert report["turns"]["started"] <= 2 + 1  # the first two, maybe one more after they end
    assert report["turns"]["dropped"] > 5


def _personae(tmp_path: Path, backend_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=REPO_CHARACTERS,
        llm={"base_url": f"{backend_url}/v1", "model": "fake", "api_key": "not-secret"},  # type: ignore[arg-type]
    )


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_through_personae_the_gateway_s_share_is_measured(
    tmp_path: Path, fake_url: str, transport: str
) -> None:
    with live_server(build_app(_personae(tmp_path, fake_url))) as url:
        config = BenchConfig(
            url=url,
            transport=transport,  # type: ignore[arg-type]
            users=2,
            # Back to back, one user's turns can now pass the WebSocket's 20 requests/s per
            # connection and be refused as rate_limited: users who read the reply first.
            think_s=0.1,
            duration_s=1.5,
            characters=("aria", "bram"),
        )
        report = await run_bench(config)
    turns = report["turns"]
    assert turns["completed"] > 2
    assert report["errors"] == {}
    assert report["added_latency_ms"]["count"] == turns["completed"]
    assert report["added_latency_ms"]["p50"] > 0  # a gateway costs something
    assert _ordered(report["added_latency_ms"])
    assert report["server"]["source"].endswith("/metrics")
    assert "cpu_cores" in report["server"], report["server"]


async def test_warm_up_turns_reach_the_server_but_not_the_figures() -> None:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=0, lengths=ReplyLengths.parse("fixed:2")))
    with live_server(fake) as url:  # type: ignore[arg-type]
        report = await run_bench(BenchConfig(url=url, users=1, duration_s=0.3, warmup_turns=4))
    assert fake.stats.requests == report["turns"]["started"] + 4
    assert report["turns"]["warmup_failed"] == 0
