"""Embedding throughput of the packaged all-MiniLM-L6-v2 (SentenceTransformerEmbedder), in
items per second, for batches of 1 and 32 chat-sized texts (10-25 words), on the CPU.

    .venv/bin/python bench/embedding_throughput.py [--seconds 10]

Each batch size runs for about ``--seconds`` after a warm-up; texts vary so no cache helps.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from personae.embedders.sentence_transformers import SentenceTransformerEmbedder

_WORDS = """the a my we went to park coffee morning late train friend dinner movie really nice
rain walk dog city weekend work meeting book garden music happy tired tomorrow finally small
kitchen bread window phone call sister trip summer beach cold warm tea quiet loud"""
WORDS = _WORDS.split()


def texts(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(10, 25))) + "." for _ in range(count)]


async def rate(embedder: SentenceTransformerEmbedder, batch: int, seconds: float) -> float:
    rng = random.Random(batch)
    await embedder.embed(texts(rng, batch))  # warm-up
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await embedder.embed(texts(rng, batch))
        done += batch
    return done / (time.perf_counter() - started)


async def main(seconds: float) -> None:
    started = time.perf_counter()
    async with SentenceTransformerEmbedder() as embedder:
        print(f"model loaded in {time.perf_counter() - started:.1f} s")
        for batch in (1, 32):
            print(f"batch {batch:>2}: {await rate(embedder, batch, seconds):8.1f} items/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().seconds))
