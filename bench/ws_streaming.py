"""Many conversations streaming at once over WebSocket: delivered tokens/s, dropped frames and the
latency the server adds to each token (issue 3, acceptance point 3).

What it does:

1. starts ``bench/fake_llm.py`` as a subprocess: an OpenAI-compatible backend streaming every
   reply at ``--tokens-per-s`` (default 50) for ``--reply-tokens`` tokens (default 100, so a
   reply lasts about 2 s), each token a distinct word `` t<ns>`` carrying ``time.time_ns()``
   taken when the backend emitted it;
2. for each load level (the ``--baseline`` levels first, default 20 and 100, for context; then
   ``--conversations``, default 1000) starts a fresh ``personae serve --port 0`` subprocess
   pointed at it, with admission control raised to admit the whole load
   (``PERSONAE_REALTIME_MAX_CONCURRENT_TURNS`` and ``..._MAX_QUEUED_TURNS``);
3. from this process (asyncio + the ``websockets`` client) opens one connection per
   ``--per-connection`` conversations, sends ``connect``, and once every connection is open
   sends one ``message.send`` per conversation (a new conversation each) all at once, then
   reads every event until ``message.done`` (or ``error``) for each of them.

Figures per level:

* delivered tokens/s: tokens read out of ``message.delta`` frames, over the span from the first
  to the last one received (and the best 1-second window); offered = conversations x rate;
* dropped frames: per conversation, the seqs the frames cover (``first_seq..seq`` for a
  coalesced delta, as in tests/transports/ws_client.py) must be exactly ``1..last``; a missing
  seq is a dropped frame, one seen twice a duplicate; tokens lost are counted as well;
* errors by code (``res`` errors and ``error`` events);
* added latency per token: receive time here minus the emission stamp in the token (same
  machine, same clock). It covers backend socket -> Personae (the OpenAI client reading SSE,
  routing, the hub, the connection's outbox and its coalescing) -> WebSocket -> this client
  reading the frame. Shown several ways: every token; only tokens emitted once every reply
  had begun ("after the ramp", leaving out turns still starting); the newest token of each
  frame (no token in it waited for a later one to join); the first token of each reply (the
  connection's first delta frame, which the coalescing window never delays); and the hold, the
  time a token waited in its frame for the frame's newest token. Coalescing (at most one
  ``delta`` frame per 20 ms per connection) costs a token up to ~20 ms: the hold shows the part
  spent merging, while a single-token frame that waited out the window only shows in the
  per-token figures (compare with ``--tokens-per-s 10``, where tokens are 100 ms apart and the
  window never binds);
* how far behind schedule the backend emitted (its pacing lag: back-pressure from a server
  that reads slowly, or a starved CPU), the time from ``message.send`` to its answer and to
  the first delta, and the CPU each process used.

The client, the server and the fake backend share this machine's cores: at high load the
figures are those of the whole machine saturating, not of the server alone; the CPU shares
and the client's own loop lag (a 10 ms sleeper's overshoot) are printed so that this can be
judged. The client's garbage collector is off while it measures.

``--direct`` first reads each level's streams straight from the fake backend (streamed chat
completions over aiohttp, no Personae between): the floor, what the backend, loopback and this
client cost at that load on this machine. The server's added latency means something only
where that floor is low.

``--per-connection K`` (1..3) puts K conversations on one connection, each with a different
character (a user's turns with one character run one after another). ``--lenient-backend``
gives the server a 60 s backend connect timeout and no circuit breaker: with the defaults an
overloaded server's own slowness shows up as backend timeouts that open the breaker.

Run (about 1-3 minutes on 2 cores)::

    .venv/bin/python bench/ws_streaming.py --conversations 1000
    .venv/bin/python bench/ws_streaming.py --conversations 30 --baseline --per-connection 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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
CHARACTERS = ("aria", "bram", "assistant")  # turns of one user with one character queue up


@dataclass(eq=False)
class Conversation:
    index: int
    character: str
    request_id: str = ""
    sent_at: float = 0.0  # perf_counter
    answered_at: float | None = None
    first_delta_at: float | None = None
    conversation_id: str | None = None
    seqs: list[int] = field(default_factory=list)
    tokens: int = 0
    first_token_latency_ms: float | None = None  # its reply's first token, never coalesced
    first_token_emitted_ns: int | None = None
    completion_tokens: int | None = None
    ended: str | None = None  # "done" or an error code


@dataclass
class Figures:
    token_latency_ms: list[float] = field(default_factory=list)
    token_emitted_ns: list[int] = field(default_factory=list)  # parallel to token_latency_ms
    newest_latency_ms: list[float] = field(default_factory=list)  # one per delta frame
    hold_ms: list[float] = field(default_factory=list)  # per token: newest stamp - own stamp
    tokens_per_frame: Counter[int] = field(default_factory=Counter)
    frames_at: list[tuple[int, int]] = field(default_factory=list)  # (receive ns, tokens)
    errors: Counter[str] = field(default_factory=Counter)
    error_messages: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    foreign_words: int = 0
    seq_token_mismatch: int = 0


class Streams:
    def __init__(self, url: str, conversations: int, per_connection: int) -> None:
        self.url = url
        self.per_connection = per_connection
        self.conversations = [
            Conversation(i, CHARACTERS[i % per_connection % len(CHARACTERS)])
            for i in range(conversations)
        ]
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.by_id: dict[str, Conversation] = {}
        self.early: dict[str, list[dict[str, Any]]] = {}  # events before their send's answer
        self.figures = Figures()
        self.open_failures: Counter[str] = Counter()
        self.remaining = conversations
        self.closing = False
        self.all_ended = asyncio.Event()
        self._ids = itertools.count()

    def groups(self) -> list[list[Conversation]]:
        k = self.per_connection
        return [self.conversations[i : i + k] for i in range(0, len(self.conversations), k)]

    async def open_all(self, concurrency: int) -> list[tuple[ClientConnection, list[Conversation]]]:
        gate = asyncio.Semaphore(concurrency)
        opened = await asyncio.gather(*(self._open(n, gate) for n in range(len(self.groups()))))
        pairs = []
        for socket, group in zip(opened, self.groups(), strict=True):
            if socket is None:
                for conversation in group:
                    self._end(conversation, "connection_refused")
            else:
                pairs.append((socket, group))
        return pairs

    async def _open(self, n: int, gate: asyncio.Semaphore) -> ClientConnection | None:
        async with gate:
            try:
                socket = await connect(
                    self.url, ping_interval=None, max_size=None, open_timeout=30, close_timeout=2
                )
                request_id = f"c{next(self._ids)}"
                params = {"protocol": {"min": 1, "max": 1}, "user": f"stream{n}"}
                await socket.send(_request(request_id, "connect", params))
                async with asyncio.timeout(30):
                    while True:
                        frame = json.loads(await socket.recv())
                        if frame.get("type") == "res" and frame.get("id") == request_id:
                            break
                if not frame.get("ok"):
                    raise RuntimeError(frame.get("error", {}).get("code"))
            except Exception as exc:
                self.open_failures[f"{type(exc).__name__}: {exc}"[:80]] += 1
                return None
        self.sockets.append(socket)
        return socket

    async def send_all(self, pairs: list[tuple[ClientConnection, list[Conversation]]]) -> None:
        for socket, group in pairs:
            pending: dict[str, Conversation] = {}
            for conversation in group:
                conversation.request_id = f"s{next(self._ids)}"
                pending[conversation.request_id] = conversation
            self.readers.append(asyncio.create_task(self._read(socket, pending)))
        for socket, group in pairs:
            for conversation in group:
                params = {
                    "character": conversation.character,
                    "text": f"benchmark message {conversation.index}",
                    "new_conversation": True,
                }
                conversation.sent_at = time.perf_counter()
                try:
                    await socket.send(_request(conversation.request_id, "message.send", params))
                except ConnectionClosed:
                    self._end(conversation, "connection_closed")

    async def _read(self, socket: ClientConnection, pending: dict[str, Conversation]) -> None:
        figures = self.figures
        mine: dict[str, Conversation] = {}
        try:
            async for message in socket:
                receive_ns = time.time_ns()
                frame = json.loads(message)
                kind = frame.get("type")
                if kind == "res":
                    conversation = pending.pop(frame.get("id"), None)
                    if conversation is None:
                        continue
                    conversation.answered_at = time.perf_counter()
                    if not frame.get("ok"):
                        code = frame.get("error", {}).get("code", "?")
                        figures.errors[f"res:{code}"] += 1
                        message = frame.get("error", {}).get("message", "")
                        figures.error_messages[f"{code}: {message}"[:160]] += 1
                        self._end(conversation, code)
                        continue
                    conversation_id = frame["result"]["conversation"]
                    conversation.conversation_id = conversation_id
                    mine[conversation_id] = conversation
                    self.by_id[conversation_id] = conversation
                    for early in self.early.pop(conversation_id, []):
                        self._event(conversation, early, receive_ns)
                elif kind == "event" and "conversation" in frame:
                    conversation = mine.get(frame["conversation"])
                    if conversation is None:
                        self.early.setdefault(frame["conversation"], []).append(frame)
                    else:
                        self._event(conversation, frame, receive_ns)
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:  # closed while the conversations ran, not by close()
                figures.closes[str(socket.close_code)] += 1
            for conversation in [*pending.values(), *mine.values()]:
                if conversation.ended is None:
                    self._end(conversation, f"closed_{socket.close_code}")

    def _event(self, conversation: Conversation, frame: dict[str, Any], receive_ns: int) -> None:
        if conversation.ended is not None:
            return
        seq = frame["seq"]
        first = frame.get("first_seq", seq)
        conversation.seqs.extend(range(first, seq + 1))
        name = frame["event"]
        payload = frame["payload"]
        if name == "message.delta":
            self._delta(conversation, payload["text"], seq - first + 1, receive_ns)
        elif name == "message.done":
            conversation.completion_tokens = payload.get("usage", {}).get("completion_tokens")
            self._end(conversation, "done")
        elif name == "error":
            self.figures.errors[f"event:{payload.get('code', '?')}"] += 1
            message = f"{payload.get('code', '?')}: {payload.get('message', '')}"
            self.figures.error_messages[message[:160]] += 1
            self._end(conversation, payload.get("code", "error"))

    def _delta(self, conversation: Conversation, text: str, covered: int, receive_ns: int) -> None:
        figures = self.figures
        if conversation.first_delta_at is None:
            conversation.first_delta_at = time.perf_counter()
        stamps = []
        for word in text.split():
            if word[0] == "t" and word[1:].isdigit():
                stamps.append(int(word[1:]))
            else:
                figures.foreign_words += 1
        if not stamps:
            return
        if len(stamps) != covered:
            figures.seq_token_mismatch += 1
        newest = max(stamps)
        if conversation.tokens == 0:
            conversation.first_token_latency_ms = (receive_ns - min(stamps)) / 1e6
            conversation.first_token_emitted_ns = min(stamps)
        conversation.tokens += len(stamps)
        figures.tokens_per_frame[len(stamps)] += 1
        figures.frames_at.append((receive_ns, len(stamps)))
        figures.newest_latency_ms.append((receive_ns - newest) / 1e6)
        for stamp in stamps:
            figures.token_latency_ms.append((receive_ns - stamp) / 1e6)
            figures.token_emitted_ns.append(stamp)
            figures.hold_ms.append((newest - stamp) / 1e6)

    def _end(self, conversation: Conversation, how: str) -> None:
        if conversation.ended is None:
            conversation.ended = how
            self.remaining -= 1
            if self.remaining == 0:
                self.all_ended.set()

    async def close(self) -> None:
        self.closing = True
        for socket in self.sockets:
            socket.transport.abort()
        await asyncio.wait(self.readers, timeout=10)


class DirectStreams(Streams):
    """The floor (``--direct``): the same conversations read straight from the fake backend
    (streamed chat completions over aiohttp, one HTTP connection each), no Personae between.
    Its latency per token is what the machine itself costs at that load (the backend
    emitting, loopback, this client reading); each token chunk counts as one frame."""

    def __init__(self, base_url: str, conversations: int) -> None:
        super().__init__(base_url, conversations, per_connection=1)
        self.session: aiohttp.ClientSession | None = None

    async def open_all(self, concurrency: int) -> list[tuple[None, list[Conversation]]]:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
        )
        return [(None, group) for group in self.groups()]

    async def send_all(self, pairs: list[tuple[None, list[Conversation]]]) -> None:
        for _, group in pairs:
            for conversation in group:
                conversation.sent_at = time.perf_counter()
                self.readers.append(asyncio.create_task(self._stream(conversation)))

    async def _stream(self, conversation: Conversation) -> None:
        assert self.session is not None
        body = {
            "model": "bench-fake",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"benchmark message {conversation.index}"}],
        }
        seq = 0
        try:
            async with self.session.post(f"{self.url}/v1/chat/completions", json=body) as answer:
                conversation.answered_at = time.perf_counter()
                async for line in answer.content:
                    receive_ns = time.time_ns()
                    if not line.startswith(b"data: "):
                        continue
                    data = line[6:].strip()
                    if data == b"[DONE]":
                        break
                    chunk: dict[str, Any] = json.loads(data)
                    usage = chunk.get("usage")
                    if usage:
                        conversation.completion_tokens = usage.get("completion_tokens")
                    choices = chunk.get("choices") or []
                    text = choices[0].get("delta", {}).get("content") if choices else None
                    if text:
                        seq += 1
                        conversation.seqs.append(seq)
                        self._delta(conversation, text, 1, receive_ns)
            self._end(conversation, "done")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.figures.errors[type(exc).__name__] += 1
            self._end(conversation, "error")

    async def close(self) -> None:
        self.closing = True
        for reader in self.readers:
            reader.cancel()
        await asyncio.wait(self.readers, timeout=10)
        if self.session is not None:
            await self.session.close()


def _request(request_id: str, method: str, params: dict[str, Any]) -> str:
    frame = {"type": "req", "id": request_id, "method": method, "params": params}
    return json.dumps(frame, separators=(",", ":"))


def _fake_stats(fake: Subprocess, reset: bool = False) -> dict[str, Any]:
    url = fake.url + ("/stats/reset" if reset else "/stats")
    request = urllib.request.Request(url, method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


async def run_level(
    args: argparse.Namespace, conversations: int, server: Subprocess | None, fake: Subprocess
) -> dict[str, Any]:
    """One level through Personae (``server``), or straight from the backend (None)."""
    gc.disable()  # this process measures: its collector's pauses would count against the server
    streams: Streams
    if server is None:
        streams = DirectStreams(fake.url, conversations)
    else:
        url = server.url.replace("http", "ws", 1) + "/ws"
        streams = Streams(url, conversations, args.per_connection)
    pairs = await streams.open_all(args.open_concurrency)
    note(f"{len(pairs)} connections open; sending {conversations} messages")
    await asyncio.to_thread(_fake_stats, fake, True)
    watched = {"fake_llm": fake.pid, "client": os.getpid()}
    if server is not None:
        watched["server"] = server.pid
    rss_before = rss_kib(server.pid) if server else 0
    lag = LoopLag()
    cpu = CpuMeter(watched)
    lag.start()
    cpu.start()
    started = time.perf_counter()
    await streams.send_all(pairs)
    finished = True
    try:
        async with asyncio.timeout(args.timeout):
            await streams.all_ended.wait()
    except TimeoutError:
        finished = False
    measured = {
        "finished_within_timeout": finished,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "cpu_cores_used": cpu.stop(),
        "client_loop_lag_ms": lag.stop(),
        "server_rss_kib": {"before": rss_before, "after": rss_kib(server.pid) if server else 0},
    }
    backend = await asyncio.to_thread(_fake_stats, fake)
    await streams.close()
    gc.enable()
    figures = summarise(args, streams, backend, measured)
    figures["target"] = "personae" if server else "direct"
    return figures


def summarise(
    args: argparse.Namespace, streams: Streams, backend: dict[str, Any], measured: dict[str, Any]
) -> dict[str, Any]:
    conversations = len(streams.conversations)
    figures = streams.figures
    ended = Counter(c.ended or "unfinished" for c in streams.conversations)
    gaps = duplicates = tokens_lost = conversations_with_gaps = 0
    for conversation in streams.conversations:  # a reply that failed midway is checked too
        seen = Counter(conversation.seqs)
        last = max(seen, default=0)
        missing = sum(1 for s in range(1, last + 1) if s not in seen)
        gaps += missing
        duplicates += sum(n - 1 for n in seen.values() if n > 1)
        conversations_with_gaps += missing > 0
        expected = conversation.completion_tokens or 0
        tokens_lost += max(0, expected - conversation.tokens)
    tokens = sum(n for _, n in figures.frames_at)
    frames = len(figures.frames_at)
    if figures.frames_at:
        first_ns = min(ns for ns, _ in figures.frames_at)
        span_s = max(1e-9, (max(ns for ns, _ in figures.frames_at) - first_ns) / 1e9)
        per_second = Counter[int]()
        for ns, n in figures.frames_at:
            per_second[(ns - first_ns) // 1_000_000_000] += n
        best_second = max(per_second.values())
    else:
        span_s, best_second = float("nan"), 0
    # After the ramp: tokens the backend emitted once every reply had begun, so that turns
    # still starting (stores, prompts, backend connections) do not weigh on the figure.
    starts = [c.first_token_emitted_ns for c in streams.conversations if c.first_token_emitted_ns]
    ramp_end = max(starts, default=0)
    steady = [
        ms
        for ms, emitted in zip(figures.token_latency_ms, figures.token_emitted_ns, strict=True)
        if emitted >= ramp_end
    ]
    answered = [(c.answered_at - c.sent_at) * 1000 for c in streams.conversations if c.answered_at]
    first_delta = [
        (c.first_delta_at - c.sent_at) * 1000 for c in streams.conversations if c.first_delta_at
    ]
    return {
        "conversations": conversations,
        "connections": len(streams.groups()),
        "per_connection": args.per_connection,
        "tokens_per_s_each": args.tokens_per_s,
        "backend_settings": "lenient (60 s, off)" if args.lenient_backend else "defaults",
        "reply_tokens": args.reply_tokens,
        "finished_within_timeout": measured["finished_within_timeout"],
        "elapsed_s": measured["elapsed_s"],
        "ended": dict(ended),
        "open_failures": dict(streams.open_failures),
        "errors": dict(figures.errors),
        "error_messages": dict(figures.error_messages.most_common(8)),
        "connections_closed_during_run": dict(figures.closes),
        "offered_tokens_per_s": round(conversations * args.tokens_per_s),
        "delivered_tokens": tokens,
        "delivered_tokens_per_s": round(tokens / span_s, 1),
        "delivered_tokens_best_1s": best_second,
        "backend": backend,
        "dropped_frames": gaps,
        "duplicate_frames": duplicates,
        "conversations_with_gaps": conversations_with_gaps,
        "tokens_lost": tokens_lost,
        "seq_token_mismatches": figures.seq_token_mismatch,
        "foreign_words": figures.foreign_words,
        "delta_frames": frames,
        "tokens_per_frame_mean": round(tokens / frames, 3) if frames else None,
        "frames_merging_tokens_pct": round(
            100 * sum(n for k, n in figures.tokens_per_frame.items() if k > 1) / frames, 2
        )
        if frames
        else None,
        "latency_per_token_ms": summary_ms(figures.token_latency_ms),
        "latency_per_token_after_ramp_ms": summary_ms(steady),
        "latency_newest_token_per_frame_ms": summary_ms(figures.newest_latency_ms),
        "latency_first_token_per_reply_ms": summary_ms(
            c.first_token_latency_ms
            for c in streams.conversations
            if c.first_token_latency_ms is not None
        ),
        "coalescing_hold_per_token_ms": summary_ms(figures.hold_ms),
        "send_to_answer_ms": summary_ms(answered),
        "send_to_first_delta_ms": summary_ms(first_delta),
        "cpu_cores_used": measured["cpu_cores_used"],
        "client_loop_lag_ms": measured["client_loop_lag_ms"],
        "server_rss_kib": measured["server_rss_kib"],
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    levels = [n for n in (*args.baseline, args.conversations) if n > 0]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ws-streaming-") as root:
        fake_argv = [
            sys.executable,
            str(BENCH / "fake_llm.py"),
            f"--tokens-per-s={args.tokens_per_s}",
            f"--reply-tokens={args.reply_tokens}",
        ]
        with Subprocess(fake_argv, name="fake-llm", cwd=Path(root)) as fake:
            for n, level in enumerate(levels):
                if args.direct:
                    note(f"level {level}: straight from the backend")
                    figures = uvloop.run(run_level(args, level, None, fake))
                    figures["load_average_before"] = args.load_before
                    results.append(figures)
                    args.load_before = load_average()
                data_root = Path(root) / f"level-{n}-{level}"
                data_root.mkdir()
                server = personae_server(
                    llm_base_url=fake.url + "/v1",
                    data_root=data_root,
                    nofile=4 * max(levels) + 512,
                    realtime={
                        "max_concurrent_turns": level,
                        "max_queued_turns": level,
                        "enqueue_timeout_s": args.timeout,
                        "shutdown_grace_s": 1,
                    },
                    extra_env=_backend_env(args, level),
                )
                with server:
                    note(f"level {level}: personae pid {server.pid} at {server.url}")
                    figures = uvloop.run(run_level(args, level, server, fake))
                    figures["load_average_before"] = args.load_before
                    results.append(figures)
                    if not server.alive():
                        raise RuntimeError("the server died:\n" + server.log_tail())
                args.load_before = load_average()
    return results


def _backend_env(args: argparse.Namespace, level: int) -> dict[str, str]:
    env = {
        "PERSONAE_GENERATION_MAX_TOKENS": str(max(args.reply_tokens, 1)),
        "PERSONAE_LLM_MAX_CONCURRENCY": str(level),
    }
    if args.lenient_backend:
        # An overloaded server is slow to connect to its backend: with the defaults (5 s
        # connect timeout, breaker open after 5 failures) its own overload fails turns.
        env["PERSONAE_LLM_CONNECT_TIMEOUT_S"] = "60"
        env["PERSONAE_LLM_BREAKER"] = json.dumps({"failure_threshold": 1_000_000})
    return env


def report(results: list[dict[str, Any]]) -> None:
    rows: list[tuple[str, ...]] = []

    def row(label: str, cell: Callable[[dict[str, Any]], object]) -> None:
        rows.append((label, *(str(cell(figures)) for figures in results)))

    def spread(label: str, key: str, *ps: str) -> None:
        """One row: the percentiles ``ps`` of the summary ``key``, as "a / b / c"."""
        row(f"{label} {'/'.join(ps)} ms", lambda f: " / ".join(f"{f[key][p]:.1f}" for p in ps))

    row("connections x conversations each", lambda f: f"{f['connections']} x {f['per_connection']}")
    row(
        "backend rate x reply length",
        lambda f: f"{f['tokens_per_s_each']:g}/s x {f['reply_tokens']}",
    )
    row("backend timeouts / breaker", lambda f: f["backend_settings"])
    row("finished within timeout", lambda f: f"{f['finished_within_timeout']} ({f['elapsed_s']} s)")
    row("conversations ended (how: n)", lambda f: _compact(f["ended"]))
    row("offered tokens/s", lambda f: f["offered_tokens_per_s"])
    row("delivered tokens/s (mean)", lambda f: f["delivered_tokens_per_s"])
    row("delivered tokens, best 1 s", lambda f: f["delivered_tokens_best_1s"])
    row(
        "tokens delivered / emitted",
        lambda f: f"{f['delivered_tokens']} / {f['backend']['tokens']}",
    )
    row("backend streams at once (peak)", lambda f: f["backend"]["peak_active"])
    row("dropped frames (seq gaps)", lambda f: f["dropped_frames"])
    row("duplicate frames / tokens lost", lambda f: f"{f['duplicate_frames']} / {f['tokens_lost']}")
    row("errors by code", lambda f: _compact(f["errors"]) or 0)
    row("connections closed (code: n)", lambda f: _compact(f["connections_closed_during_run"]) or 0)
    spread("added latency per token", "latency_per_token_ms", "p50", "p90", "p99", "max")
    spread("  after the ramp", "latency_per_token_after_ramp_ms", "p50", "p99")
    row("  (tokens after the ramp)", lambda f: f["latency_per_token_after_ramp_ms"]["count"])
    spread("  newest token of each frame", "latency_newest_token_per_frame_ms", "p50", "p99")
    spread("  first token of each reply", "latency_first_token_per_reply_ms", "p50", "p99")
    spread("  held for later tokens", "coalescing_hold_per_token_ms", "p50", "p99")
    row("tokens per delta frame (mean)", lambda f: f["tokens_per_frame_mean"])
    row("frames carrying >1 token %", lambda f: f["frames_merging_tokens_pct"])
    row(
        "backend pacing lag p50/p99 ms",
        lambda f: "{p50:.1f} / {p99:.1f}".format(**f["backend"]["pacing_lag_ms"]),
    )
    spread("send -> answer", "send_to_answer_ms", "p50", "p99")
    spread("send -> first delta", "send_to_first_delta_ms", "p50", "p99")
    row("CPU cores: server", lambda f: f["cpu_cores_used"].get("server", "-"))
    row("  fake backend", lambda f: f["cpu_cores_used"]["fake_llm"])
    row("  client (this process)", lambda f: f["cpu_cores_used"]["client"])
    row("  whole machine", lambda f: "{machine} of {machine_cores}".format(**f["cpu_cores_used"]))
    spread("client loop lag", "client_loop_lag_ms", "p99")
    row(
        "server RSS after, MiB",
        lambda f: f"{f['server_rss_kib']['after'] / 1024:.0f}" if f["target"] != "direct" else "-",
    )
    row("load average before", lambda f: f["load_average_before"])
    header = (
        "",
        *(
            f"{f['conversations']} conversations" + (", direct" if f["target"] == "direct" else "")
            for f in results
        ),
    )
    print_table("ws_streaming: concurrent conversations streaming over WebSocket", rows, header)
    for figures in results:
        if figures["error_messages"]:
            print(f"\nmost frequent errors at {figures['conversations']} conversations:")
            for message, count in figures["error_messages"].items():
                print(f"  {count:6d}  {message}")


def _compact(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument(
        "--baseline",
        type=int,
        nargs="*",
        default=[20, 100],
        help="lighter levels run first, for context (none: --baseline with no value)",
    )
    parser.add_argument("--per-connection", type=int, default=1, help="conversations (<= 3)")
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--reply-tokens", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=90.0, help="s per level for every reply")
    parser.add_argument("--open-concurrency", type=int, default=100)
    parser.add_argument(
        "--lenient-backend",
        action="store_true",
        help="60 s backend connect timeout and no circuit breaking (default: the server's own)",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="at each level, read the same streams straight from the backend first (the floor)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.per_connection <= len(CHARACTERS):
        sys.exit(f"--per-connection must be 1..{len(CHARACTERS)} (one character each)")
    wanted = 4 * max([args.conversations, *args.baseline]) + 512
    if nofile_hard_limit() < wanted:
        sys.exit(f"ulimit -Hn is {nofile_hard_limit()}; {wanted} open files are needed")
    raise_nofile(wanted)
    args.load_before = load_average()
    results = run(args)
    if args.json:
        dump_json({"levels": results})
    else:
        report(results)


if __name__ == "__main__":
    main()
