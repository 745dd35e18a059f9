"""Drive the load: open loop (Poisson arrivals at a rate, as many users as it takes) or closed
loop (a fixed number of users, each sending its next turn after the last reply and a think
time), for a duration, then wait for the turns still running, and report.

A user never has two turns at once: Personae serialises a user's turns with one character,
and that queueing would be counted as the gateway's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from personae.loadgen.clients import TurnClient
from personae.loadgen.config import BenchConfig
from personae.loadgen.http_client import HttpTurns
from personae.loadgen.outcome import TurnOutcome
from personae.loadgen.probe import ServerProbe
from personae.loadgen.report import build_report
from personae.loadgen.tally import Tally
from personae.loadgen.traffic import Traffic
from personae.loadgen.ws_client import WsTurns

_TICK_S = 0.25


Tick = Callable[[float, Tally], None]  # (seconds elapsed, tally)


def make_client(config: BenchConfig) -> TurnClient:
    if config.transport == "ws":
        return WsTurns(config.url, api_key=config.api_key)  # no per-turn max_tokens in the protocol
    connections = config.users if config.users is not None else config.max_in_flight
    return HttpTurns(
        config.url,
        stream=config.stream,
        api_key=config.api_key,
        max_tokens=config.max_tokens,
        connections=connections,
    )


class _Run:
    def __init__(self, config: BenchConfig, client: TurnClient, traffic: Traffic) -> None:
        self.config = config
        self.client = client
        self.traffic = traffic
        self.tally = Tally()
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"  # fresh users, fresh conversations

    async def turn(self, user: str) -> None:
        character, text = self.traffic.character(), self.traffic.message()
        self.tally.started += 1
        self.tally.in_flight += 1
        sent_ns = time.time_ns()
        try:
            async with asyncio.timeout(self.config.turn_timeout_s):
                outcome = await self.client.turn(user, character, text)
        except TimeoutError:
            outcome = TurnOutcome(sent_ns=sent_ns, error="timeout")
            await self.client.forget(user)  # its connection may still carry the old reply
        finally:
            self.tally.in_flight -= 1
        self.tally.record(outcome)

    async def warm_up(self, turns: int) -> int:
        """Send ``turns`` turns one by one, not counted; returns how many failed (a target that
        fails them all will fail the run too, and say why there)."""
        failed = 0
        for _ in range(turns):
            user = f"{self.prefix}-warmup"
            try:
                async with asyncio.timeout(self.config.turn_timeout_s):
                    outcome = await self.client.turn(user, self.traffic.character(), "Hello!")
                failed += not outcome.ok
            except TimeoutError:
                failed += 1
                await self.client.forget(user)
        return failed

    async def open_loop(self, rate: float, deadline: float) -> None:
        idle: list[str] = []
        running: set[asyncio.Task[None]] = set()
        made = 0

        async def turn_of(user: str) -> None:
            try:
                await self.turn(user)
            finally:
                idle.append(user)

        due = time.monotonic()
        while True:
            due += self.traffic.arrival_gap_s(rate)
            if due >= deadline:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.tally.in_flight >= self.config.max_in_flight:
                self.tally.dropped += 1
                continue
            if idle:
                user = idle.pop(self.traffic.rng.randrange(len(idle)))
            else:
                user, made = f"{self.prefix}-u{made}", made + 1
            task = asyncio.create_task(turn_of(user))
            running.add(task)
            task.add_done_callback(running.discard)
        await self._drain(set(running))

    async def closed_loop(self, users: int, deadline: float) -> None:
        async def user_loop(user: str) -> None:
            # Start spread over one think time, as users who did not all arrive at once.
            await asyncio.sleep(self.traffic.rng.uniform(0, self.config.think_s))
            while time.monotonic() < deadline:
                await self.turn(user)
                think = min(self.traffic.think_s(self.config.think_s), deadline - time.monotonic())
                if think > 0:
                    await asyncio.sleep(think)

        tasks = {asyncio.create_task(user_loop(f"{self.prefix}-u{i}")) for i in range(users)}
        _, running = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        await self._drain(running)

    async def _drain(self, running: set[asyncio.Task[None]]) -> None:
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self.config.drain_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            self.tally.errors["unfinished"] += len(late)


async def run_bench(
    config: BenchConfig, *, on_tick: Tick | None = None, client: TurnClient | None = None
) -> dict[str, Any]:
    """Run the benchmark ``config`` describes and return its report (see report.py)."""
    client = client or make_client(config)
    probe = ServerProbe(pid=config.server_pid, base_url=config.url, api_key=config.api_key)
    load_before = _load_average()
    ticker: asyncio.Task[None] | None = None
    try:
        characters = list(config.characters) or await client.characters()
        traffic = Traffic(
            random.Random(config.seed),
            characters,
            zipf_s=config.zipf_s,
            context_words=config.context_words,
            context_sigma=config.context_sigma,
            max_words=config.max_words,
        )
        run = _Run(config, client, traffic)
        warmup_failures = await run.warm_up(config.warmup_turns)
        await probe.start()
        start_ns, start = time.time_ns(), time.monotonic()
        deadline = start + config.duration_s
        if on_tick is not None:
            ticker = asyncio.create_task(_tick(on_tick, run.tally, start))
        if config.rate is not None:
            await run.open_loop(config.rate, deadline)
        else:
            assert config.users is not None
            await run.closed_loop(config.users, deadline)
        elapsed = time.monotonic() - start
        server = await probe.stop()
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await client.aclose()
    if on_tick is not None:
        on_tick(elapsed, run.tally)
    return build_report(
        config,
        run.tally,
        characters=characters,
        start_ns=start_ns,
        elapsed_s=elapsed,
        server=server,
        load_average=(load_before, _load_average()),
        warmup_failures=warmup_failures,
    )


async def _tick(on_tick: Tick, tally: Tally, start: float) -> None:
    while True:
        on_tick(time.monotonic() - start, tally)
        await asyncio.sleep(_TICK_S)


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
