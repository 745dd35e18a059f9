"""Write throughput of the conversation store on PostgreSQL against SQLite: C conversations
at once, each doing T turns (``open_turn`` then ``append_message``, the two writes of a chat
turn), on one node (one pool) and on two nodes (two pools on the same database, as two
processes would be), plus the p50/p99 latency of one write.

    .venv/bin/python bench/postgres_store.py [--conversations 20] [--turns 20]

PostgreSQL is the ``pgserver`` wheel's (tests/postgres_server.py) on loopback, fsync on and
``synchronous_commit = off`` (a commit survives a killed process, not a power cut), which is
what SQLite's ``synchronous = normal`` promises. Bounded: C x T turns per run, temp folders
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from personae.core.ports import ConversationStore
from personae.core.types import NewMessage, Role
from personae.storage.postgres import PostgresConversationStore, PostgresDatabase
from personae.storage.sqlite import SqliteConversationStore

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.postgres_server import PostgresServer


async def run(stores: list[ConversationStore], conversations: int, turns: int) -> dict[str, float]:
    latencies: list[float] = []

    async def chat(n: int) -> None:
        store = stores[n % len(stores)]
        conversation: str | None = None
        for t in range(turns):
            started = time.perf_counter()
            opened = await store.open_turn(
                external_user_id=f"user{n}",
                character_id="mira",
                text=f"message {t}",
                conversation_id=conversation,
            )
            latencies.append(time.perf_counter() - started)
            conversation = opened.conversation.id
            started = time.perf_counter()
            await store.append_message(conversation, NewMessage(Role.ASSISTANT, f"reply {t}"))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(chat(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "turns_per_s": conversations * turns / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def main(conversations: int, turns: int) -> None:
    server = PostgresServer(durable=True)
    server.start()
    try:
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as folder:
            async with SqliteConversationStore(Path(folder) / "bench.db") as sqlite:
                results["sqlite, one process"] = await run([sqlite], conversations, turns)
        url = server.create_database()
        async with PostgresConversationStore(PostgresDatabase(url)) as one:
            results["postgres, one node"] = await run([one], conversations, turns)
        url = server.create_database()
        async with (
            PostgresConversationStore(PostgresDatabase(url)) as first,
            PostgresConversationStore(PostgresDatabase(url)) as second,
        ):
            results["postgres, two nodes"] = await run([first, second], conversations, turns)
    finally:
        server.remove()
    print(f"{conversations} conversations x {turns} turns (2 writes per turn)")
    print(f"{'store':<24}{'turns/s':>10}{'write p50 ms':>14}{'write p99 ms':>14}")
    for name, figures in results.items():
        print(
            f"{name:<24}{figures['turns_per_s']:>10.0f}"
            f"{figures['p50_ms']:>14.2f}{figures['p99_ms']:>14.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.turns))
