"""Start-up load of 5,000 generated character cards: time and memory.

    .venv/bin/python bench/load_cards.py [--cards N] [--png-share F] [--seed N]

Generates the cards into a temporary folder (about nine in ten V2/V3 JSON, the rest PNG
with both ``chara`` and ``ccv3`` chunks, as exported), each with the text a shared card
carries (a long description, greetings, example dialogues, a depth prompt), two in five with
their own lorebook (5 to 30 entries, some regex keys and decorators), one in ten naming one
of 20 standalone lorebooks by ``extensions.world``. Then, each in a fresh process so the
figures are its own:

  start-up   what the server runs (``app.runtime.load_characters``: the catalog, with a
             content hash per version)
  loader     ``characters.loader.load_characters_dir`` with the lorebooks folder (standalone
             books read and attached, each card's own book parsed)

and reports wall time, the process's peak RSS growth, and the peak of Python allocations
(tracemalloc, measured in a separate run because it slows loading down). The folder is
deleted at the end. Bounded: well under a minute for 5,000 cards.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from personae.characters.cards import ExportFormat, decode_character, encode_character

WORDS = [
    *("glass", "orchard", "hail", "river", "lantern", "harbour", "tide", "ember", "moss"),
    *("copper", "ledger", "quiet", "storm", "market", "tower", "bell", "salt", "bread"),
    *("letter", "garden", "compass", "winter", "song", "thread", "stone"),
]
WORLDS = 20


def prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(WORDS, k=words)).capitalize() + "."


def book(rng: random.Random, name: str) -> dict[str, Any]:
    entries = []
    for index in range(rng.randint(5, 30)):
        keys = rng.sample(WORDS, 2)
        if index % 6 == 0:
            keys = [rf"/\b{keys[0]}s?\b/i"]
        content = prose(rng, 40)
        if index % 5 == 0:
            content = f"@@depth {index % 4}\n@@role system\n{content}"
        entries.append(
            {
                "keys": keys,
                "content": content,
                "extensions": {},
                "enabled": True,
                "insertion_order": index,
                "use_regex": False,
                "selective": index % 4 == 0,
                "secondary_keys": rng.sample(WORDS, 1),
            }
        )
    return {
        "name": name,
        "scan_depth": 4,
        "token_budget": 512,
        "extensions": {},
        "entries": entries,
    }


def card(rng: random.Random, number: int) -> dict[str, Any]:
    name = f"Bench Character {number:05d}"
    extensions: dict[str, Any] = {
        "depth_prompt": {"prompt": "{{char}} keeps to the point.", "depth": 4, "role": "system"},
        "talkativeness": "0.5",
    }
    if number % 10 == 0:
        extensions["world"] = f"world-{number % WORLDS:02d}"
    data: dict[str, Any] = {
        "name": name,
        "description": " ".join(prose(rng, 30) for _ in range(8)),
        "personality": prose(rng, 12),
        "scenario": prose(rng, 25),
        "first_mes": prose(rng, 60),
        "mes_example": "<START>\n{{user}}: " + prose(rng, 12) + "\n{{char}}: " + prose(rng, 40),
        "creator_notes": prose(rng, 20),
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [prose(rng, 40), prose(rng, 40)],
        "tags": rng.sample(WORDS, 3),
        "creator": "bench",
        "character_version": "1.0",
        "extensions": extensions,
    }
    if number % 5 < 2:
        data["character_book"] = book(rng, f"{name} lore")
    if number % 2:
        data |= {"group_only_greetings": [], "nickname": f"Bench {number}"}
        return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def generate(root: Path, cards: int, png_share: float, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    characters, lorebooks = root / "characters", root / "lorebooks"
    characters.mkdir()
    lorebooks.mkdir()
    for world in range(WORLDS):
        document = {"spec": "lorebook_v3", "data": book(rng, f"world-{world:02d}")}
        (lorebooks / f"world-{world:02d}.json").write_text(json.dumps(document))
    pngs = 0
    for number in range(cards):
        raw = json.dumps(card(rng, number)).encode()
        if rng.random() < png_share:
            character = decode_character(raw, suffix=".json", source="generated")
            (characters / f"c{number:05d}.png").write_bytes(
                encode_character(character, ExportFormat.PNG)
            )
            pngs += 1
        else:
            (characters / f"c{number:05d}.json").write_bytes(raw)
    return cards - pngs, pngs


def child(mode: str, root: Path, trace: bool) -> None:
    """Runs in a fresh process: load once, print the figures as JSON."""
    from personae.app.runtime import load_characters
    from personae.characters.loader import load_characters_dir
    from personae.settings import Settings

    settings = Settings(characters_dir=root / "characters", lorebooks_dir=root / "lorebooks")
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "start-up":
        count = len(load_characters(settings).catalog)
        broken = 0
    else:
        report = load_characters_dir(settings.characters_dir, lorebooks=settings.lorebooks_dir)
        count, broken = len(report.characters), len(report.errors)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = {"count": count, "broken": broken, "seconds": seconds}
    figures |= {"rss_mb": (after_kb - before_kb) / 1024, "traced_mb": peak / 2**20}
    print(json.dumps(figures))


def run_child(mode: str, root: Path, trace: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--root", str(root)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--png-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--child", choices=("start-up", "loader"))
    parser.add_argument("--root", type=Path)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.root, args.trace)
        return
    with tempfile.TemporaryDirectory(prefix="personae-cards-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        jsons, pngs = generate(root, args.cards, args.png_share, args.seed)
        size = sum(p.stat().st_size for p in (root / "characters").iterdir()) / 2**20
        print(
            f"generated {args.cards} cards ({jsons} JSON, {pngs} PNG; {size:.0f} MiB) and "
            f"{WORLDS} lorebooks in {time.perf_counter() - started:.1f} s"
        )
        for mode in ("start-up", "loader"):
            plain = run_child(mode, root, trace=False)
            traced = run_child(mode, root, trace=True)
            print(
                f"{mode:>9}: {plain['count']} loaded ({plain['broken']} broken) in "
                f"{plain['seconds']:.2f} s ({plain['seconds'] / plain['count'] * 1000:.2f} ms "
                f"a card); peak RSS +{plain['rss_mb']:.0f} MiB; "
                f"Python allocations peak {traced['traced_mb']:.0f} MiB"
            )


if __name__ == "__main__":
    main()
