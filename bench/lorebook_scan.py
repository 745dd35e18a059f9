"""Lorebook activation per turn: a 500-entry book scanned over the last 20 messages.

    .venv/bin/python bench/lorebook_scan.py [--turns N] [--entries N] [--seed N]

The book and the conversation are generated from a fixed seed, in the shapes real books
have: mostly plain keys of one to three words, some ``/regex/i`` keys, selective entries with
each secondary logic, constant entries, decorators (``@@depth``, ``@@exclude_keys``,
``@@activate_only_every``), recursive scanning on, scan depth 20. Each turn scans the 20
newest messages of a sliding window over a long conversation (about 60 words a message, a
few lore keys in most); a turn brings two new messages. Reported per turn: the scan alone
(``core.lorebook.scan``); the scan plus macro expansion, token counting and the book's
budget (``lore.activate``, what prompt assembly calls); and a cold scan with nothing
remembered (a conversation's first turn after a restart). Target (characters issue): p99
under 2 ms. Bounded: about ten seconds.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from typing import Any

from personae.core.lorebook import parse_book, scan
from personae.core.lorebook.lore import activate

TARGET_P99_MS = 2.0
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "ha"]
SYLLABLES += ["bri", "dun", "fel", "gor", "isk", "jul", "mar", "nor", "pel", "quin"]
FILLER = [
    *("the", "a", "and", "of", "to", "in", "is", "was", "it", "with", "that", "on", "for"),
    *("as", "at", "by", "from", "his", "her", "they", "we", "you", "this", "but", "not"),
    *("be", "are", "had", "have", "were", "said", "into", "over", "under", "before"),
    *("after", "then", "now", "when", "where", "light", "dark", "road", "door", "hand"),
    *("eyes", "voice", "night", "morning", "rain", "wind", "stone", "water", "fire", "wood"),
    *("walked", "looked", "turned", "smiled", "asked", "answered", "waited", "listened"),
]


def name(rng: random.Random, taken: set[str]) -> str:
    while True:
        word = "".join(rng.choice(SYLLABLES) for _ in range(3))
        if word not in taken:
            taken.add(word)
            return word


def make_book(rng: random.Random, entries: int) -> tuple[dict[str, Any], list[str]]:
    """A book whose entries are named things (each with its own names), a few about topics
    many share; some contents mention another entry, so recursion has work to do."""
    taken: set[str] = set()
    names = [[name(rng, taken) for _ in range(rng.choice((1, 2, 2, 3)))] for _ in range(entries)]
    topics = [name(rng, taken) for _ in range(40)]
    book: list[dict[str, Any]] = []
    for index, keys in enumerate(names):
        keys = [*keys, *rng.sample(topics, 1 if index % 5 == 0 else 0)]
        if index % 10 == 0:
            keys = [rf"/\b{keys[0]}(s|es)?\b/i", *keys[1:]]
        filler = " ".join(rng.choices(FILLER, k=40))
        mention = f" It is tied to {rng.choice(names)[0]}." if index % 4 == 0 else ""
        content = f"Entry {index}: {filler}.{mention}"
        fields: dict[str, Any] = {}
        if index % 7 == 0:
            fields = {
                "selective": True,
                "secondary_keys": rng.sample(topics, 2),
                "extensions": {"selectiveLogic": index % 4},
            }
        if index % 50 == 0:
            fields["constant"] = True
        if index % 13 == 0:
            content = f"@@depth {index % 5}\n@@role user\n{content}"
        if index % 17 == 0:
            content = f"@@exclude_keys {rng.choice(topics)}\n{content}"
        if index % 19 == 0:
            content = f"@@activate_only_every 3\n{content}"
        book.append(
            {
                "keys": keys,
                "content": content,
                "extensions": fields.pop("extensions", {}),
                "enabled": index % 31 != 0,
                "insertion_order": rng.randint(0, 200),
                "priority": rng.randint(0, 10),
                "use_regex": False,
                **fields,
            }
        )
    document = {
        "name": "Bench Atlas",
        "scan_depth": 20,
        "token_budget": 2048,
        "recursive_scanning": True,
        "extensions": {},
        "entries": book,
    }
    return document, [n for group in names for n in group] + topics


def make_chat(rng: random.Random, messages: int, mentionable: list[str]) -> list[str]:
    """Messages of 40 to 120 words; most mention one to three things the book knows."""
    chat = []
    for _ in range(messages):
        words = rng.choices(FILLER, k=rng.randint(40, 120))
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            words[rng.randrange(len(words))] = rng.choice(mentionable).capitalize()
        chat.append(" ".join(words) + ".")
    return chat


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    document, mentionable = make_book(rng, args.entries)
    started = time.perf_counter()
    parse_book(document)
    parse_ms = (time.perf_counter() - started) * 1000
    # Each turn adds two messages (the last reply and the new one); the window is 20.
    chat = make_chat(rng, 2 * args.turns + 20, mentionable)
    windows = [chat[2 * turn : 2 * turn + 20] for turn in range(args.turns)]
    text_chars = statistics.mean(len("".join(w)) for w in windows[:200])

    def count(text: str) -> int:
        return -(-len(text) // 4)  # the default four characters per token

    # Each pass gets a book of its own, so every turn meets its two new messages unseen.
    figures: dict[str, list[float]] = {"scan": [], "scan + macros + budget": [], "cold": []}
    activated: list[int] = []
    book = parse_book(document)
    gc.collect()
    for turn, window in enumerate(windows, start=1):
        started = time.perf_counter()
        found = scan(book, window, turn=turn)
        figures["scan"].append((time.perf_counter() - started) * 1000)
        activated.append(len(found))
    book = parse_book(document)
    gc.collect()
    for turn, window in enumerate(windows, start=1):
        started = time.perf_counter()
        activate([book], window, turn=turn, render=str.strip, count_tokens=count)
        figures["scan + macros + budget"].append((time.perf_counter() - started) * 1000)
    # A conversation's first turn after a restart: none of its 20 messages seen before.
    for turn, window in enumerate(windows[: args.turns // 10], start=1):
        book.index.forget()
        started = time.perf_counter()
        scan(book, window, turn=turn)
        figures["cold"].append((time.perf_counter() - started) * 1000)

    keys = len(book.index.keys)
    print(f"book: {len(book.entries)} entries, {keys} distinct keys (parsed in {parse_ms:.0f} ms)")
    print(f"      scan depth 20, recursive; ~{text_chars:,.0f} characters in a window")
    print(f"turns: {args.turns}; entries activated per turn: mean {statistics.mean(activated):.1f}")
    for name, samples in figures.items():
        p50, p99 = percentile(samples, 0.50), percentile(samples, 0.99)
        verdict = (
            ""
            if name == "cold"
            else f" (target < {TARGET_P99_MS} ms: " + ("met)" if p99 < TARGET_P99_MS else "MISSED)")
        )
        print(f"{name:>23}: p50 {p50:.3f} ms  p99 {p99:.3f} ms  max {max(samples):.3f} ms{verdict}")
    print("(cold: all 20 messages new to the book, as on a conversation's first turn after a")
    print(" restart; other turns bring two new messages, the last reply and the user's)")


if __name__ == "__main__":
    main()
