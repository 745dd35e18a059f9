"""Moderation per message: the blocked-word automaton and PII redaction on a 2 KB message.

    .venv/bin/python bench/moderation.py [--words N] [--messages N] [--seed N]

10,000 generated blocked words (one to two words each, split over block / mask / flag) are
compiled into one Aho-Corasick automaton; each message is about 2 KB of generated words with
a few listed words in it. Reported per message: ``WordFilter.check`` (scan + mask), the
streamed masker fed in 4-character chunks, PII redaction of a 2 KB message with some PII
planted, and the restoration of the redacted text. Target (issue 7): the automaton under
1 ms p99 for 10k words on 2 KB. Bounded: a few seconds.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable

from personae.core.moderation import WordFilter
from personae.core.pii import Redactor

TARGET_P99_MS = 1.0
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "ha", "po", "qu"]
FILLER = ["be", "da", "fu", "gi", "jo", "wu", "xe", "yo", "ce", "bi"]  # not in listed words
PII = ["ann.lee@example.org", "+44 20 7946 0958", "4111 1111 1111 1111", "192.168.7.42",
       "DE89 3704 0044 0532 0130 00"]  # fmt: skip


def word(rng: random.Random, syllables: list[str] = SYLLABLES) -> str:
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


def message(rng: random.Random, planted: list[str], size: int, rate: float) -> str:
    """About ``size`` characters of filler words (never listed), with ``planted`` sprinkled."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(planted) if rng.random() < rate else word(rng, FILLER))
    return " ".join(words)[:size]


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    gc.collect()
    out = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def report(label: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{label:<48} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   (n={len(samples)})")
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    vocabulary: set[str] = set()
    while len(vocabulary) < args.words:
        vocabulary.add(word(rng) if rng.random() < 0.8 else f"{word(rng)} {word(rng)}")
    listed = sorted(vocabulary)
    rng.shuffle(listed)
    third = len(listed) // 3
    started = time.perf_counter()
    words = WordFilter({"block": listed[:third], "mask": listed[third : 2 * third],
                        "flag": listed[2 * third :]})  # fmt: skip
    build_ms = (time.perf_counter() - started) * 1000
    texts = [message(rng, listed[third:], 2048, 0.01) for _ in range(args.messages)]
    pii_texts = [message(rng, PII, 2048, 0.02) for _ in range(args.messages)]
    hits = statistics.mean(len(words.check(t).hits) for t in texts[:200])
    print(f"automaton: {words.size} words, built in {build_ms:.0f} ms; "
          f"{hits:.1f} listed words per 2 KB message")  # fmt: skip

    def streamed(text: str) -> None:
        masker = words.masker()
        for i in range(0, len(text), 4):
            masker.feed(text[i : i + 4])
        masker.flush()

    redactor = Redactor()

    def redact(text: str) -> None:
        redactor.vault().redact(text)

    def round_trip(text: str) -> None:
        vault = redactor.vault()
        vault.restore(vault.redact(text))

    p99 = report("blocked words: check (scan + mask), 2 KB", timed(words.check, texts))
    report("blocked words: streamed in 4-char chunks, 2 KB", timed(streamed, texts[:500]))
    report("PII: redact, 2 KB", timed(redact, pii_texts))
    report("PII: redact + restore, 2 KB", timed(round_trip, pii_texts))
    verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
    print(f"target: automaton p99 under {TARGET_P99_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
