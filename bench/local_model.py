"""The local model through Personae against llama-cpp-python called directly (issue 12): the
packaged Gemma 3 270M (Q4_K_M), the same prompts, the same sampling and seed, so both write the
same tokens.

1. ``--turns`` turns of one conversation go through ``ChatService.turn`` (the real runtime: its
   SQLite store in a temp folder, the repo's characters, the local model as its backend, in
   this process). For each turn: time to the first delta, then the decode rate (completion
   tokens from ``message.done``'s usage, over the time from the first delta to done).
2. The prompts Personae sent (recorded at the backend) are then given, in the same order, to a
   second ``llama_cpp.Llama`` called directly with the same options (``create_completion``,
   streamed, same stops, seed, temperature): the same measures, tokens counted as the adapter
   counts them for its usage.

Both keep their model loaded across turns, so llama.cpp reuses the prompt prefix it evaluated
last (the previous turn's prompt and reply) in both: turn 1 pays the whole system prompt, later
turns only what is new. Both steps run ``--rounds`` times, each round a new conversation on a
fresh database: one round is about 125 tokens each way and its ratio swings by +-0.1 with the
scheduler, so the figures are pooled over every round (with each round's ratio beside them).
Printed: median TTFT of turn 1 and of the last turn, decode tokens/s and the ratio Personae /
direct (target: at least 0.9).

    .venv/bin/python bench/local_model.py [--rounds 5] [--turns 10] [--max-tokens 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from threading import Event
from typing import Any

from _server import load_average, print_table
from fastapi import FastAPI

from personae.app import build_app
from personae.core.events import MessageDelta, MessageDone
from personae.core.types import ChatRequest, InboundMessage, ModelChunk
from personae.llm.llamacpp import LlamaCppChatModel, Progress
from personae.llm.packaged import packaged_model_path
from personae.llm.transcript import transcript_prompt
from personae.observability.logging import configure_logging
from personae.settings import Settings
from personae.transports.gateway import Gateway

REPO = Path(__file__).resolve().parent.parent
SEED = 7
QUESTIONS = [
    "Hello! Who are you?",
    "What do you like to do in the evening?",
    "Tell me about the last place you visited.",
    "What was the weather like there?",
    "Would you go back?",
    "Who would you take with you?",
    "What would you pack?",
    "How long would the trip take?",
    "What is the first thing you would do on arrival?",
    "And the last thing before you leave?",
]


class RecordingLlama(LlamaCppChatModel):
    """The adapter as shipped, keeping the requests it was given (to replay them directly)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        self.requests.append(request)
        async with aclosing(super().stream(request)) as chunks:
            async for chunk in chunks:
                yield chunk


async def through_personae(args: argparse.Namespace, model_path: Path, data: Path) -> Any:
    model = RecordingLlama(
        name="local", model_path=model_path, n_ctx=2048, n_threads=args.threads, seed=SEED
    )
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data,
        characters_dir=REPO / "characters",
        generation={"max_tokens": args.max_tokens},
    )
    app: FastAPI = build_app(settings, backends={"local": model})
    turns = []
    async with app.router.lifespan_context(app):
        gw: Gateway = app.state.gateway
        for n in range(args.turns):
            text = QUESTIONS[n % len(QUESTIONS)]
            inbound = InboundMessage(user="bench-local", character_id=args.character, text=text)
            sent = time.perf_counter()
            first = last = None
            done: MessageDone | None = None
            async with aclosing(gw.service.turn(inbound)) as events:
                async for event in events:
                    if isinstance(event, MessageDelta):
                        last = time.perf_counter()
                        first = first or last
                    elif isinstance(event, MessageDone):
                        done = event
            ended = time.perf_counter()
            if done is None or first is None or last is None:
                raise RuntimeError(f"turn {n + 1} ended without a reply")
            tokens = done.usage.completion_tokens if done.usage else 0
            turns.append(
                {
                    "ttft_s": first - sent,
                    "tokens": tokens,
                    "decode_s": last - first,
                    "done_s": ended - first,
                }
            )
    return turns, model.requests


def directly(args: argparse.Namespace, model_path: Path, requests: list[ChatRequest]) -> Any:
    import llama_cpp

    llama = llama_cpp.Llama(
        model_path=str(model_path), n_ctx=2048, n_threads=args.threads, verbose=False, seed=SEED
    )
    turns = []
    try:
        for request in requests:
            prompt, stops = transcript_prompt(request)
            params = request.params
            sent = time.perf_counter()
            tokens = llama.tokenize(prompt.encode(), add_bos=True, special=False)
            first: float | None = None
            counted = Progress(Event())  # the adapter's own count, stop sequences included
            for _ in llama.create_completion(
                tokens,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed if params.seed is not None else SEED,
                stop=stops,
                stopping_criteria=llama_cpp.StoppingCriteriaList([counted]),
                stream=True,
            ):
                first = first or time.perf_counter()
            ended = time.perf_counter()
            first = first or ended
            span = ended - first  # the generator's end is the end of the turn here
            out = {"ttft_s": first - sent, "tokens": counted.generated}
            turns.append({**out, "decode_s": span, "done_s": span})
    finally:
        llama.close()
    return turns


def median_ttft_ms(turns: list[dict[str, Any]]) -> str:
    return f"{statistics.median(t['ttft_s'] for t in turns) * 1000:.0f}"


def rate(turns: list[dict[str, Any]], span: str = "done_s") -> float:
    """Decode tokens/s over every turn: tokens after the first, over the time after it (to the
    end of the turn, or ``decode_s``: to its last delta)."""
    tokens = sum(max(0, t["tokens"] - 1) for t in turns)
    seconds = sum(t[span] for t in turns)
    return tokens / seconds if seconds else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--character", default="aria")
    parser.add_argument("--rounds", type=int, default=5, help="conversations, each both ways")
    args = parser.parse_args()
    configure_logging("warning")  # a line per turn would be noise between the tables
    load = load_average()
    personae: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-local-model-") as tmp:
        model_path = packaged_model_path(Path(tmp))
        for n in range(args.rounds):
            data = Path(tmp) / f"data-{n}"
            ours, requests = asyncio.run(through_personae(args, model_path, data))
            # On a thread that ends with it: llama.cpp's OpenMP keeps a team of compute threads
            # per calling thread, and a team left on this (the event loop's) thread slowed
            # the next round through Personae (a token in 15-21 ms instead of 14).
            with ThreadPoolExecutor(1) as own:
                theirs = own.submit(directly, args, model_path, requests).result()
            ratios.append(rate(ours) / rate(theirs))
            personae += ours
            direct += theirs
    rows = []
    for name, turns in (("llama-cpp-python directly", direct), ("through Personae", personae)):
        rows.append(
            (
                name,
                median_ttft_ms(turns[:: args.turns]),
                median_ttft_ms(turns[args.turns - 1 :: args.turns]),
                median_ttft_ms([t for i, t in enumerate(turns) if i % args.turns]),
                str(sum(t["tokens"] for t in turns)),
                f"{rate(turns):.1f}",
            )
        )
    header = (
        "",
        "TTFT turn 1 ms",
        f"TTFT turn {args.turns} ms",
        "TTFT turns 2.. ms",
        "tokens",
        "decode tokens/s",
    )
    print_table(
        f"local model: {args.rounds} x {args.turns} turns of one conversation, max"
        f" {args.max_tokens} tokens, {args.threads} threads",
        rows,
        header,
    )
    print(f"\nPersonae / direct, decode tokens/s: {rate(personae) / rate(direct):.2f}", end="")
    print(f" (to the last delta instead of done: {rate(personae, 'decode_s'):.1f} tokens/s)")
    print("by round: " + " ".join(f"{r:.2f}" for r in ratios), end="")
    print(f" (median {statistics.median(ratios):.2f})")
    print(f"load average before: {load}")


if __name__ == "__main__":
    main()
