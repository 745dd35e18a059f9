"""CPU per turn on the hot path, in process (issue 12): µs of this process's CPU per turn, by
path, over the real runtime (real SQLite in a temp folder, the repo's characters, the default
settings) with ``personae.testing.FakeChatModel`` as the backend, so only Personae's own work
is counted.

    .venv/bin/python bench/turn_cpu.py [--turns 1000] [--paths service,http,sse]
    .venv/bin/python bench/turn_cpu.py --profile http --turns 500    # cProfile, top 40
    .venv/bin/python bench/turn_cpu.py --paths service,http --variants all   # what each costs

Paths, each run after its own warm-up:

  service   ``ChatService.turn`` consumed to its end (what every transport pays)
  http      ``POST /v1/chat/completions`` through the whole ASGI app (middlewares, auth,
            pydantic, JSON) via httpx's ``ASGITransport``, a whole (non-streaming) reply
  sse       the same with ``"stream": true``, the SSE body read to ``[DONE]``
  backend   the ``service`` loop with the real ``OpenAICompatChatModel`` (streaming) as the
            backend, talking to a ``personae fake-llm`` subprocess on loopback (no wait for
            the first token, no pacing): this process's figure then includes the backend HTTP
            client, while the fake's own CPU is its process's, not counted

Turns go one at a time (no concurrency: the figure is cost, not latency), round robin over
``--users`` users and the characters, so each conversation's history grows as in a real chat;
the fake replies with ``--reply-tokens`` tokens. CPU is ``time.process_time`` (every thread:
the SQLite writer's included), so other processes on a shared machine do not inflate it;
"of it, loop" is the event loop's thread alone (the rest: SQLite's writer and readers);
wall time is printed beside it. Log lines are rendered as the server renders them (JSON, at
``--log-level``, info as shipped) into /dev/null. The garbage collector runs as usual (its
cost is part of a turn's). The whole run is repeated ``--repeat`` times on fresh databases and
the cheapest run of each path is shown, with every run's figure beside it: on a shared machine
the spread is wide (±30 %), and interference only ever adds.

``--variants`` measures the same paths with one feature changed from the shipped settings at a
time (``VARIANTS``: long-term memory on, PII redaction off, no audit row per model call, no
metrics, logs at warning), each printed with its difference from ``shipped``: what a feature
costs a turn, so an operator can weigh it, and so the next cut goes where the cost is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import itertools
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
from _server import fake_llm
from fastapi import FastAPI

from personae.app import build_app
from personae.core.events import MessageDone
from personae.core.ports import ChatModel
from personae.core.service import ChatService
from personae.core.types import InboundMessage
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.observability.logging import configure_logging
from personae.settings import Settings
from personae.testing import FakeChatModel
from personae.transports.gateway import Gateway

REPO = Path(__file__).resolve().parent.parent
PATHS = ("service", "http", "sse", "backend")
IN_PROCESS = ("service", "http", "sse")  # over FakeChatModel

#: One feature changed from the shipped settings: dotted setting -> value.
VARIANTS: dict[str, dict[str, object]] = {
    "shipped": {},
    "memory on": {"memory.enabled": True, "memory.embedder": "none"},  # full text, no model
    "no PII redaction": {"moderation.pii.enabled": False},
    "no audit rows": {"security.audit_model_calls": False},
    "no metrics": {"metrics.enabled": False},
    "logs at warning": {"log_level": "warning"},
}


class Turns:
    """Who speaks to whom next: users round robin, characters cycling at another stride."""

    def __init__(self, users: int, characters: list[str]) -> None:
        self._users = itertools.cycle([f"cpu-u{i}" for i in range(users)])
        self._characters = itertools.cycle(characters)
        self._count = itertools.count()

    def next(self) -> tuple[str, str, str]:
        n = next(self._count)
        return next(self._users), next(self._characters), f"Tell me about day {n}, please."


async def service_turn(service: ChatService, user: str, character: str, text: str) -> None:
    inbound = InboundMessage(user=user, character_id=character, text=text)
    done = False
    async with aclosing(service.turn(inbound)) as events:
        async for event in events:
            done = done or isinstance(event, MessageDone)
    if not done:
        raise RuntimeError("the turn ended without MessageDone")


async def http_turn(
    client: httpx.AsyncClient, user: str, character: str, text: str, *, stream: bool
) -> None:
    body = {
        "model": character,
        "messages": [{"role": "user", "content": text}],
        "user": user,
        "stream": stream,
    }
    if not stream:
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        if not json.loads(response.content)["choices"][0]["message"]["content"]:
            raise RuntimeError("an empty reply")
        return
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        last = ""
        async for line in response.aiter_lines():
            if line:
                last = line
        if last != "data: [DONE]":
            raise RuntimeError(f"the stream ended with {last!r}")


async def measure(
    name: str, turn: Callable[[str, str, str], Awaitable[None]], turns: Turns, n: int
) -> dict[str, Any]:
    for _ in range(max(20, n // 10)):  # warm-up: caches, first conversations
        await turn(*turns.next())
    cpu0, loop0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    for _ in range(n):
        await turn(*turns.next())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loop = time.thread_time() - loop0
    return {
        "path": name,
        "turns": n,
        "cpu_us_per_turn": round(cpu / n * 1e6, 1),
        "loop_cpu_us_per_turn": round(loop / n * 1e6, 1),
        "wall_us_per_turn": round(wall / n * 1e6, 1),
        "turns_per_cpu_s": round(n / cpu, 1) if cpu else None,
    }


async def run(args: argparse.Namespace, upstream: str | None) -> list[dict[str, Any]]:
    """One run of every path asked for, on fresh databases; ``upstream`` is the fake-llm's
    OpenAI base URL (the ``backend`` path)."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-turn-cpu-") as tmp:
        local = [p for p in args.paths if p in IN_PROCESS]
        if local:
            results += await run_in_process(args, Path(tmp) / "data", local)
        if "backend" in args.paths:
            assert upstream is not None
            results.append(await run_backend(args, Path(tmp) / "data-backend", upstream))
    return results


def bench_settings(data_dir: Path, changes: dict[str, object] | None = None) -> Settings:
    settings = Settings(data_dir=data_dir, characters_dir=REPO / "characters")  # type: ignore[call-arg]
    for dotted, value in (changes or {}).items():
        settings = _changed(settings, dotted.split("."), value)
    return settings


def _changed(model: Any, path: list[str], value: object) -> Any:
    """``model`` with the setting at ``path`` replaced (pydantic models are copied, not
    mutated; ``model_copy(update=)`` skips validation, so the value must have the right type)."""
    head, *rest = path
    if not hasattr(model, head):
        raise SystemExit(f"no setting {head!r} in {type(model).__name__}")
    new = _changed(getattr(model, head), rest, value) if rest else value
    return model.model_copy(update={head: new})


async def run_in_process(
    args: argparse.Namespace, data_dir: Path, paths: list[str]
) -> list[dict[str, Any]]:
    reply = " ".join(f"word{i}" for i in range(args.reply_tokens))
    model = FakeChatModel(default_reply=reply, context_window=args.context_tokens)
    app: FastAPI = build_app(bench_settings(data_dir, args.changes), backends={"fake": model})
    results = []
    async with app.router.lifespan_context(app):
        gw: Gateway = app.state.gateway
        turns = Turns(args.users, sorted(c.id for c in gw.catalog.all()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def service(user: str, character: str, text: str) -> None:
                model.requests.clear()  # the fake keeps every request; not ours to count
                await service_turn(gw.service, user, character, text)

            async def http(user: str, character: str, text: str) -> None:
                model.requests.clear()
                await http_turn(client, user, character, text, stream=False)

            async def sse(user: str, character: str, text: str) -> None:
                model.requests.clear()
                await http_turn(client, user, character, text, stream=True)

            runners = {"service": service, "http": http, "sse": sse}
            for name in paths:
                results.append(await measured(args, name, runners[name], turns))
    return results


async def run_backend(args: argparse.Namespace, data_dir: Path, upstream: str) -> dict[str, Any]:
    model: ChatModel = OpenAICompatChatModel(
        name="upstream",
        model="bench-fake",
        base_url=upstream,
        api_key="bench",
        context_window=args.context_tokens,
    )
    app: FastAPI = build_app(bench_settings(data_dir, args.changes), backends={"upstream": model})
    async with app.router.lifespan_context(app):
        gw: Gateway = app.state.gateway
        turns = Turns(args.users, sorted(c.id for c in gw.catalog.all()))

        async def backend(user: str, character: str, text: str) -> None:
            await service_turn(gw.service, user, character, text)

        return await measured(args, "backend", backend, turns)


async def measured(
    args: argparse.Namespace,
    name: str,
    turn: Callable[[str, str, str], Awaitable[None]],
    turns: Turns,
) -> dict[str, Any]:
    """``measure``, under cProfile when ``--profile`` names this path."""
    if args.profile != name:
        return await measure(name, turn, turns, args.turns)
    profiler = cProfile.Profile(time.thread_time)  # the loop's CPU, not wall
    profiler.enable()
    result = await measure(name, turn, turns, args.turns)
    profiler.disable()
    if args.profile_out:
        profiler.dump_stats(args.profile_out)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(args.sort).print_stats(40)
    print(out.getvalue(), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1000, help="measured turns per path")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each on a fresh database")
    parser.add_argument("--users", type=int, default=20, help="users taking turns in rotation")
    parser.add_argument(
        "--context-tokens", type=int, default=4096, help="the fake's context window (tokens)"
    )
    parser.add_argument("--reply-tokens", type=int, default=20, help="tokens in each fake reply")
    parser.add_argument(
        "--paths",
        type=lambda s: [p for p in s.split(",") if p],
        default=list(PATHS),
        help="comma-separated: " + ",".join(PATHS),
    )
    parser.add_argument("--profile", choices=PATHS, help="cProfile this path (to stderr)")
    parser.add_argument("--profile-out", help="also save the cProfile stats to this file")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument("--log-level", default="info", help="server log level (shipped: info)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--variants",
        type=lambda s: list(VARIANTS) if s == "all" else [v for v in s.split(",") if v],
        default=["shipped"],
        help="comma-separated, or all: " + ", ".join(VARIANTS),
    )
    args = parser.parse_args()
    unknown = set(args.paths) - set(PATHS)
    if args.repeat < 1 or args.turns < 1:
        parser.error("--repeat and --turns must be at least 1")
    if unknown:
        parser.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    if set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variant(s); known: {', '.join(VARIANTS)}")
    runs: dict[str, list[list[dict[str, Any]]]] = {v: [] for v in args.variants}
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the bench's client, not the server
    with contextlib.ExitStack() as stack:
        upstream = None
        if "backend" in args.paths:  # one fake backend for every run, started once
            fake = fake_llm(
                "--first-token-s=0",
                "--tokens-per-s=0",
                f"--reply-tokens=fixed:{args.reply_tokens}",
                "--no-stamp-arrival",
            )
            upstream = stack.enter_context(fake).url + "/v1"
        # The server's JSON log lines, rendered, dropped.
        sink = stack.enter_context(Path(os.devnull).open("w"))
        # Variants take turns within each repeat, so that a busy spell of the machine does not
        # land on one variant's runs only.
        for _ in range(args.repeat):
            for variant in args.variants:
                args.changes = VARIANTS[variant]
                level = str(args.changes.get("log_level", args.log_level))
                configure_logging(level, json=True, stream=sink)
                runs[variant].append(asyncio.run(run(args, upstream)))
    # Per path, the run that cost least: what other processes took from this one (cache
    # misses, a busy sibling core) only ever adds, so the minimum is the steadiest figure.
    results = []
    for variant, variant_runs in runs.items():
        for by_path in zip(*variant_runs, strict=True):
            result = dict(min(by_path, key=lambda r: r["cpu_us_per_turn"]))
            result["variant"] = variant
            result["cpu_us_per_turn_runs"] = [r["cpu_us_per_turn"] for r in by_path]
            results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print_results(results, with_variants=args.variants != ["shipped"])


def print_results(results: list[dict[str, Any]], *, with_variants: bool) -> None:
    base = {r["path"]: r["cpu_us_per_turn"] for r in results if r["variant"] == "shipped"}
    head = f"{'variant':<18} " if with_variants else ""
    print(
        f"{head}{'path':<8} {'turns':>6} {'CPU µs/turn':>12} {'of it, loop':>12} "
        f"{'wall µs/turn':>13} {'turns/CPU s':>12}"
        + (f" {'vs shipped':>16}" if with_variants else "")
        + "  CPU µs/turn of each run"
    )
    for r in results:
        cells = f"{r['variant']:<18} " if with_variants else ""
        cells += (
            f"{r['path']:<8} {r['turns']:>6} {r['cpu_us_per_turn']:>12.1f} "
            f"{r['loop_cpu_us_per_turn']:>12.1f} "
            f"{r['wall_us_per_turn']:>13.1f} {r['turns_per_cpu_s']:>12.1f}"
        )
        if with_variants:
            shipped = base.get(r["path"])
            diff = "" if shipped is None else f"{r['cpu_us_per_turn'] - shipped:+.0f} µs"
            pct = "" if shipped is None else f" {100 * (r['cpu_us_per_turn'] / shipped - 1):+.0f}%"
            cells += f" {diff + pct:>16}"
        print(cells + "  " + " ".join(f"{x:.0f}" for x in r["cpu_us_per_turn_runs"]))


if __name__ == "__main__":
    main()
