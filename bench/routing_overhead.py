"""Routing + retry machinery overhead per turn, against an instant in-process backend.

    .venv/bin/python bench/routing_overhead.py [--turns N]

A turn streams an 8-chunk reply from a backend that never waits. Each turn is timed twice,
back to back: straight from the backend, and through ``RoutedChatModel`` with everything in
force (circuit breaker, concurrency slot, first-token and total deadlines, a retry policy,
a fallback). A turn's overhead is the difference of the pair. Scenarios:

  primary answers          the common case
  failover                 the primary fails at once (HTTP 503), the fallback answers
  circuit open             the primary's breaker is open, so it is passed over
  tool call                the primary answers with a tool call (pieces, no text), which
                           commits the chain as text does (a tool loop's first round)

Target (skills-and-routing issue): p99 overhead under 1 ms. Bounded: a few seconds per
scenario, well under a minute in all. Log lines are filtered out (a failover logs a warning,
and printing 20 000 of them would measure the terminal, not the router).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import structlog

from personae.core.ports import ChatModel
from personae.core.types import (
    ChatMessage,
    ChatRequest,
    ModelChunk,
    Role,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from personae.errors import BackendUnavailable
from personae.llm.guard import BackendLimits, GuardedBackend
from personae.llm.retry import RetryPolicy
from personae.llm.router import RoutedChatModel

REQUEST = ChatRequest(messages=(ChatMessage(Role.USER, "Where to?"),))
CHUNKS = (
    *(ModelChunk(text=f" word{i}") for i in range(8)),
    ModelChunk(finish_reason="stop", usage=Usage(3, 8)),
)
TOOL_REQUEST = ChatRequest(
    messages=REQUEST.messages, tools=(ToolSpec("dice", "Roll dice.", {"type": "object"}),)
)
TOOL_CHUNKS = (
    ModelChunk(tool_calls=(ToolCallDelta(0, id="call_1", name="dice"),)),
    *(
        ModelChunk(tool_calls=(ToolCallDelta(0, arguments=part),))
        for part in ('{"ex', "pression", '": "2d6"}')
    ),
    ModelChunk(finish_reason="tool_calls", usage=Usage(3, 8)),
)
LIMITS = BackendLimits(
    first_token_timeout_s=60, total_timeout_s=600, max_concurrency=8, failure_threshold=5
)
TARGET_P99_MS = 1.0


class InstantModel(ChatModel):
    """Streams a fixed reply without ever waiting, or fails before the first chunk."""

    supports_tools = True

    def __init__(
        self, name: str, *, fail: bool = False, chunks: tuple[ModelChunk, ...] = CHUNKS
    ) -> None:
        self.name = name
        self.fail = fail
        self.chunks = chunks

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        if self.fail:
            raise BackendUnavailable("HTTP 503: busy", backend=self.name, status=503)
        for chunk in self.chunks:
            yield chunk


async def consume(model: ChatModel, request: ChatRequest) -> int:
    count = 0
    async with aclosing(model.stream(request)) as chunks:
        async for _ in chunks:
            count += 1
    return count


def make_chain(scenario: str, chunks: tuple[ModelChunk, ...]) -> RoutedChatModel:
    fail = scenario in ("failover", "circuit open")
    threshold = 1 if scenario == "circuit open" else 10**9  # else: every turn calls it
    primary = GuardedBackend(
        InstantModel("primary", fail=fail, chunks=chunks),
        BackendLimits(
            first_token_timeout_s=LIMITS.first_token_timeout_s,
            total_timeout_s=LIMITS.total_timeout_s,
            max_concurrency=LIMITS.max_concurrency,
            failure_threshold=threshold,
            reset_timeout_s=3600,
        ),
    )
    fallback = GuardedBackend(InstantModel("fallback"), LIMITS)
    return RoutedChatModel([primary, fallback], retry=RetryPolicy(retries=1))


async def measure(scenario: str, turns: int, warmup: int) -> list[float]:
    """Paired overheads in milliseconds."""
    tools = scenario == "tool call"
    chunks, request = (TOOL_CHUNKS, TOOL_REQUEST) if tools else (CHUNKS, REQUEST)
    direct = InstantModel("direct", chunks=chunks)
    routed = make_chain(scenario, chunks)
    clock: Callable[[], int] = time.perf_counter_ns
    for _ in range(warmup):
        await consume(direct, request)
        assert await consume(routed, request) == len(chunks)
    overheads: list[float] = []
    gc.collect()
    for _ in range(turns):
        started = clock()
        await consume(direct, request)
        middle = clock()
        await consume(routed, request)
        ended = clock()
        overheads.append(((ended - middle) - (middle - started)) / 1e6)
    snapshot = routed.snapshot()
    assert snapshot.turns == turns + warmup
    assert snapshot.exhausted == 0
    return overheads


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20_000, help="timed turns per scenario")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    print(f"routing overhead per turn, {len(CHUNKS)} chunks per reply, python {sys.version[:7]}")
    print(f"{'scenario':<18} {'turns':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    worst_p99 = 0.0
    started = time.monotonic()
    for scenario in ("primary answers", "failover", "circuit open", "tool call"):
        overheads = asyncio.run(measure(scenario, args.turns, warmup=args.turns // 10))
        p50, p99, p999 = (percentile(overheads, p) for p in (50, 99, 99.9))
        worst_p99 = max(worst_p99, p99)
        print(f"{scenario:<18} {len(overheads):>7} {p50:>8.3f} {p99:>8.3f} {p999:>9.3f}")
    verdict = "met" if worst_p99 < TARGET_P99_MS else "MISSED"
    print(
        f"target p99 < {TARGET_P99_MS} ms: {verdict} (worst p99 {worst_p99:.3f} ms);"
        f" {time.monotonic() - started:.1f} s"
    )
    return 0 if worst_p99 < TARGET_P99_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
