"""Idle WebSocket connections: how much memory one held connection costs the server, and how fast
it still answers a ``ping`` request while it holds them all (issue 3, acceptance point 3).

What it does:

1. starts ``bench/fake_llm.py`` (so no local model is loaded) and ``personae serve --port 0``
   as subprocesses on 127.0.0.1, with a fresh data folder, the repo's characters, a short
   heartbeat (``PERSONAE_REALTIME_HEARTBEAT_INTERVAL_S``, default 10 s, so that server pings
   really flow while the figures are taken) and a raised open-files limit;
2. reads the server's RSS (VmRSS in /proc/PID/status) before any connection;
3. from this process (asyncio + the ``websockets`` client) opens ``--connections`` WebSocket
   connections to ``/ws``, each sending ``connect`` and then nothing but a ``ping`` request
   every ``--keepalive`` seconds (below the 90 s idle timeout) and reading what the server
   sends (heartbeat ``ping`` events);
4. once all are open, lets the server settle, reads its RSS again, then sends ``--samples``
   ``ping`` requests spread over the held connections (``--sample-rate`` per second) and
   times each round trip (send to ``res``, measured in this process);
5. reads the RSS a last time, checks every connection is still open, closes everything.

Memory per connection = (RSS held - RSS before) / connections, the larger of the two readings
taken while held; the marginal figure between 10 % and 100 % of the connections leaves out
one-time costs (modules and caches the first connections warm). Sockets' kernel buffers are
not in RSS. ``--compression`` chooses whether clients offer permessage-deflate (``deflate``,
what browsers and the ``websockets`` library do by default, and what uvicorn accepts) or not.

Run (about a minute on 2 cores; needs ``ulimit -Hn`` above the connection count)::

    .venv/bin/python bench/ws_idle.py --connections 10000
    .venv/bin/python bench/ws_idle.py --connections 10000 --compression none --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from _server import (
    CpuMeter,
    LoopLag,
    Subprocess,
    dump_json,
    load_average,
    nofile_hard_limit,
    note,
    personae_server,
    print_table,
    raise_nofile,
    rss_kib,
    summary_ms,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

BENCH = Path(__file__).resolve().parent


@dataclass(eq=False)
class Held:
    index: int
    ws: ClientConnection
    last_sent: float
    heartbeats: int = 0
    reader: asyncio.Task[None] | None = None
    close_code: int | None = None


@dataclass
class Client:
    url: str
    compression: str | None
    held: list[Held] = field(default_factory=list)
    waiting: dict[str, float] = field(default_factory=dict)  # sampled request id -> sent at
    rtt_ms: list[float] = field(default_factory=list)
    rtt_at: list[float] = field(default_factory=list)  # when each timed ping was sent
    errors: Counter[str] = field(default_factory=Counter)
    open_failures: Counter[str] = field(default_factory=Counter)
    all_answered: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def _settled(self, request_id: str) -> float | None:
        sent = self.waiting.pop(request_id, None)
        if not self.waiting:
            self.all_answered.set()
        return sent

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
        request_id = f"r{next(self._ids)}"
        frame = {"type": "req", "id": request_id, "method": method, "params": params or {}}
        return request_id, json.dumps(frame, separators=(",", ":"))

    async def open_one(self, index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                ws = await connect(
                    self.url,
                    compression=self.compression,
                    ping_interval=None,  # app-level pings only: they are what counts as life
                    max_size=1 << 20,
                    open_timeout=30,
                    close_timeout=2,
                )
            except Exception as exc:
                self.open_failures[type(exc).__name__] += 1
                return
            try:
                request_id, text = self.request(
                    "connect",
                    {"protocol": {"min": 1, "max": 1}, "user": f"idle{index}", "device_id": "b"},
                )
                await ws.send(text)
                async with asyncio.timeout(30):
                    while True:
                        frame = json.loads(await ws.recv())
                        if frame.get("type") == "res" and frame.get("id") == request_id:
                            break
                if not frame.get("ok"):
                    raise RuntimeError(frame.get("error", {}).get("code", "refused"))
            except Exception as exc:
                self.open_failures[f"connect:{type(exc).__name__}:{exc}"[:80]] += 1
                ws.transport.abort()
                return
        held = Held(index, ws, last_sent=time.monotonic())
        held.reader = asyncio.create_task(self.read(held))
        self.held.append(held)

    async def read(self, held: Held) -> None:
        try:
            async for message in held.ws:
                frame = json.loads(message)
                if frame.get("type") == "res":
                    sent = self._settled(frame["id"])
                    if not frame.get("ok"):
                        self.errors[frame.get("error", {}).get("code", "?")] += 1
                    elif sent is not None:
                        self.rtt_ms.append((time.perf_counter() - sent) * 1000)
                        self.rtt_at.append(sent)
                elif frame.get("event") == "ping":
                    held.heartbeats += 1
        except ConnectionClosed:
            pass
        finally:
            held.close_code = held.ws.close_code

    def open_now(self) -> list[Held]:
        return [h for h in self.held if h.close_code is None]

    async def ping(self, held: Held, *, measure: bool) -> None:
        request_id, text = self.request("ping")
        held.last_sent = time.monotonic()
        if measure:
            self.waiting[request_id] = time.perf_counter()
        try:
            await held.ws.send(text)
        except ConnectionClosed:
            self._settled(request_id)

    async def keep_alive(self, every_s: float) -> None:
        """A ``ping`` request on each connection once every ``every_s``: the server closes a
        connection it has heard nothing from for ``idle_timeout_s``."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for held in self.held:
                if held.close_code is None and now - held.last_sent >= every_s:
                    await self.ping(held, measure=False)

    async def sample(self, count: int, rate: float) -> None:
        """``count`` timed pings, ``rate`` per second, over distinct connections where
        possible, in random order."""
        targets = self.open_now()
        random.shuffle(targets)
        start = time.monotonic()
        for k in range(count):
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            held = targets[k % len(targets)]
            if held.close_code is None:
                await self.ping(held, measure=True)
        self.all_answered.clear()
        if self.waiting:
            with contextlib.suppress(TimeoutError):  # answers still missing count as lost
                async with asyncio.timeout(10):
                    await self.all_answered.wait()

    async def close_all(self) -> None:
        for held in self.held:
            held.ws.transport.abort()
        readers = [h.reader for h in self.held if h.reader is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*readers, return_exceptions=True)


async def measure(args: argparse.Namespace, server: Subprocess) -> dict[str, Any]:
    url = server.url.replace("http", "ws", 1) + "/ws"
    # This process is the measuring instrument: its own collector pausing (10,000 connections
    # make for long full collections) would be charged to the server's round trips.
    gc.disable()
    client = Client(url, compression=None if args.compression == "none" else "deflate")
    await asyncio.sleep(2)  # let start-up allocations finish
    rss_before = rss_kib(server.pid)
    note(f"server RSS before connections: {rss_before} KiB; opening {args.connections}")

    gate = asyncio.Semaphore(args.open_concurrency)
    keepalive = asyncio.create_task(client.keep_alive(args.keepalive))
    tenth = max(1, args.connections // 10)
    opened_at = time.monotonic()
    async with asyncio.timeout(args.open_timeout):
        await asyncio.gather(*(client.open_one(i, gate) for i in range(tenth)))
        await asyncio.sleep(1)
        rss_tenth, held_tenth = rss_kib(server.pid), len(client.open_now())
        await asyncio.gather(*(client.open_one(i, gate) for i in range(tenth, args.connections)))
    open_s = time.monotonic() - opened_at
    note(f"{len(client.held)} open in {open_s:.1f} s; failures: {dict(client.open_failures)}")

    await asyncio.sleep(args.settle)
    rss_settled = rss_kib(server.pid)
    cpu = CpuMeter({"server": server.pid, "client": os.getpid()})
    cpu.start()
    wall_start = time.monotonic()
    heartbeats_start = sum(h.heartbeats for h in client.held)
    note(f"RSS held: {rss_settled} KiB; timing {args.samples} pings at {args.sample_rate}/s")
    lag = LoopLag()
    lag.start()
    await client.sample(args.samples, args.sample_rate)
    client_lag = lag.stop()
    hold_s = time.monotonic() - wall_start
    cpu_used = cpu.stop()
    heartbeats = sum(h.heartbeats for h in client.held) - heartbeats_start
    rss_end = rss_kib(server.pid)
    keepalive.cancel()
    still_open = len(client.open_now())
    negotiated = any(h.ws.protocol.extensions for h in client.held[:1])
    closed_codes = Counter(str(h.close_code) for h in client.held if h.close_code is not None)
    await client.close_all()
    gc.enable()

    held = len(client.held)
    rss_held = max(rss_settled, rss_end)
    per_conn = (rss_held - rss_before) / held if held else float("nan")
    marginal = (rss_held - rss_tenth) / (held - held_tenth) if held > held_tenth else float("nan")
    return {
        "connections_requested": args.connections,
        "connections_held": held,
        "open_failures": dict(client.open_failures),
        "still_open_after_hold": still_open,
        "closed_during_hold": dict(closed_codes),
        "compression": args.compression,
        "deflate_negotiated": negotiated,
        "heartbeat_interval_s": args.heartbeat,
        "open_s": round(open_s, 2),
        "hold_s": round(hold_s + args.settle, 2),
        "heartbeats_received_during_sampling": heartbeats,
        "server_rss_kib": {
            "before": rss_before,
            f"at_{held_tenth}": rss_tenth,
            "settled": rss_settled,
            "after_sampling": rss_end,
        },
        "kib_per_connection": round(per_conn, 2),
        "kib_per_connection_marginal": round(marginal, 2),
        "cpu_cores_used_while_sampling": cpu_used,
        "ping_rtt_ms": summary_ms(client.rtt_ms),
        "ping_errors": dict(client.errors),
        "client_loop_lag_ms": client_lag,
        "load_average_before": args.load_before,
        "_timeline": list(zip(client.rtt_at, client.rtt_ms, strict=True)),
    }


def report(figures: dict[str, Any]) -> None:
    rss = figures["server_rss_kib"]
    rtt = figures["ping_rtt_ms"]
    cpu = figures["cpu_cores_used_while_sampling"]
    rows = [
        (
            "connections held / requested",
            f"{figures['connections_held']} / {figures['connections_requested']}",
        ),
        ("still open after the hold", str(figures["still_open_after_hold"])),
        (
            "permessage-deflate offered / in use",
            f"{figures['compression']} / {'yes' if figures['deflate_negotiated'] else 'no'}",
        ),
        ("time to open all", f"{figures['open_s']} s"),
        ("server heartbeat interval", f"{figures['heartbeat_interval_s']} s"),
        ("heartbeats received while sampling", str(figures["heartbeats_received_during_sampling"])),
        ("server RSS before", f"{rss['before'] / 1024:.1f} MiB"),
        ("server RSS held (max)", f"{max(rss['settled'], rss['after_sampling']) / 1024:.1f} MiB"),
        ("memory per connection", f"{figures['kib_per_connection']} KiB  (target <= 30)"),
        ("  marginal, 10%..100%", f"{figures['kib_per_connection_marginal']} KiB"),
        ("CPU while sampling, server", f"{cpu['server']:.2f} cores"),
        ("  client (this process)", f"{cpu['client']:.2f} cores"),
        ("  whole machine", f"{cpu['machine']:.2f} of {cpu['machine_cores']} cores"),
        (f"ping round trip, {rtt['count']} samples", ""),
        ("  p50", f"{rtt['p50']} ms"),
        ("  p90", f"{rtt['p90']} ms"),
        ("  p99", f"{rtt['p99']} ms"),
        ("  max", f"{rtt['max']} ms"),
        ("ping errors", str(figures["ping_errors"] or 0)),
        ("client loop lag p99 (10 ms sleeper)", f"{figures['client_loop_lag_ms']['p99']} ms"),
        ("open failures", str(figures["open_failures"] or 0)),
        ("closed during hold (code: n)", str(figures["closed_during_hold"] or 0)),
        ("load average before", figures["load_average_before"]),
    ]
    print_table("ws_idle: idle WebSocket connections on one personae process", rows, ("", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="server ping interval, s")
    parser.add_argument("--keepalive", type=float, default=20.0, help="client ping interval, s")
    parser.add_argument("--samples", type=int, default=2000, help="timed ping round trips")
    parser.add_argument("--sample-rate", type=float, default=100.0, help="timed pings per s")
    parser.add_argument("--settle", type=float, default=5.0, help="s between opening and RSS")
    parser.add_argument("--open-concurrency", type=int, default=100)
    parser.add_argument("--open-timeout", type=float, default=150.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--dump-rtts", help="write 'sent_at_s rtt_ms' lines to this file")
    args = parser.parse_args()

    wanted = args.connections + 512
    if nofile_hard_limit() < wanted:
        sys.exit(f"ulimit -Hn is {nofile_hard_limit()}; {wanted} open files are needed")
    raise_nofile(wanted)
    args.load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="bench-ws-idle-") as root:
        fake = Subprocess(
            [sys.executable, str(BENCH / "fake_llm.py")], name="fake-llm", cwd=Path(root)
        )
        with fake:
            server = personae_server(
                llm_base_url=fake.url + "/v1",
                data_root=Path(root),
                nofile=wanted,
                realtime={"heartbeat_interval_s": args.heartbeat, "shutdown_grace_s": 1},
            )
            with server:
                note(f"personae pid {server.pid} at {server.url}")
                figures = uvloop.run(measure(args, server))
                if not server.alive():
                    raise RuntimeError("the server died:\n" + server.log_tail())

    timeline = figures.pop("_timeline")
    if args.dump_rtts:
        t0 = min((at for at, _ in timeline), default=0.0)
        lines = [f"{at - t0:.4f} {ms:.3f}\n" for at, ms in timeline]
        Path(args.dump_rtts).write_text("".join(lines))
    if args.json:
        dump_json(figures)
    else:
        report(figures)


if __name__ == "__main__":
    main()
