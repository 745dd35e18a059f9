"""Acceptance 1 of the memory issue, the recall half: 20 facts stated early in a 200+ turn
conversation, asked about late in other words; with the packaged MiniLM and the SQLite store,
the fact is among the top 5 hits for at least 90 % of the questions."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.embedders.sentence_transformers import SentenceTransformerEmbedder
from personae.storage.sqlite.memory import SqliteMemoryStore

pytestmark = pytest.mark.slow

ME = Partition.private("u-test", "mira")
NOW = datetime(2025, 6, 1, 20, 0, tzinfo=UTC)

# (a fact as the user said it, a later question about it in other words)
FACTS = [
    ("My sister Clara moved to Lisbon last year.", "Which city does my sibling live in now?"),
    (
        "I'm allergic to peanuts, so I always check labels.",
        "Is there any food that is dangerous for me?",
    ),
    ("My dog is a golden retriever called Biscuit.", "What's the name of my pet?"),
    ("I work as a nurse, mostly night shifts at the hospital.", "What do I do for a living?"),
    (
        "My favourite band is Radiohead, I've seen them live twice.",
        "Which musicians do I like the most?",
    ),
    ("I'm training for the Berlin marathon in September.", "What race am I getting ready for?"),
    ("My birthday is on the 14th of February.", "When do I turn a year older?"),
    ("I drive an old blue Volvo that keeps breaking down.", "What kind of car do I own?"),
    ("I grew up on a dairy farm in Wisconsin.", "Where did I spend my childhood?"),
    (
        "I'm learning Japanese because I want to visit Kyoto.",
        "Which foreign language am I studying?",
    ),
    ("My husband Tom is a chef at an Italian restaurant.", "What does my partner do for work?"),
    ("I can't drink coffee, it gives me terrible headaches.", "Why do I stay away from caffeine?"),
    ("I play the cello in a community orchestra.", "Which instrument do I play?"),
    ("My daughter Mia just started kindergarten.", "What's my child up to at school these days?"),
    ("I've been vegetarian since I was sixteen.", "Do I eat meat?"),
    ("I broke my left wrist skiing in March.", "What injury did I have this year?"),
    ("My favourite book is One Hundred Years of Solitude.", "Which novel do I love most?"),
    ("We're planning our wedding for next June in Tuscany.", "Where are we getting married?"),
    ("I'm terrified of spiders, even tiny ones.", "What creatures frighten me?"),
    ("I collect vintage postcards from the 1950s.", "What do I collect as a hobby?"),
]

# Chit-chat: what a day was like, from three independent slots, so lines share words the way
# real small talk does (some even brush against the facts: a car wash, a novel, a swim).
TIMES = [
    "This morning",
    "Last night",
    "Yesterday",
    "On Sunday",
    "After work",
    "At lunch",
    "Earlier today",
    "Over the weekend",
    "Before breakfast",
    "Late last night",
    "On my break",
    "Tonight",
]
ACTIVITIES = [
    "I watched a documentary about deep sea fish",
    "I repotted the tomato seedlings",
    "I cleaned out the fridge",
    "I tried a new ramen place",
    "I fixed the squeaky door hinge",
    "I went for a swim at the public pool",
    "I baked banana bread",
    "I rewired the doorbell",
    "I sorted the recycling",
    "I watched the football match",
    "I did a jigsaw puzzle",
    "I ironed a pile of shirts",
    "I walked along the river",
    "I played chess online",
    "I listened to a podcast about volcanoes",
    "I cooked a big pot of chili",
    "I called the bank about a strange charge",
    "I bought new running shoes",
    "I painted the garden fence",
    "I read a few chapters of a detective novel",
    "I cleared out the garage",
    "I washed the car",
    "I tried yoga for the first time",
    "I went to a pottery class",
    "I queued at the post office for ages",
    "I assembled a flat-pack bookshelf",
    "I hung some pictures in the hallway",
    "I watched the sunset from the hill",
    "I made pancakes",
    "I tidied my desk",
    "I went to the farmers market",
    "I had a video call with an old classmate",
    "I helped a neighbour carry boxes upstairs",
    "I updated my laptop",
    "I went bowling",
    "I visited the science museum",
]
REACTIONS = [
    "and it was surprisingly fun",
    "which took longer than expected",
    "and now I'm exhausted",
    "and I'd happily do it again",
    "but it rained halfway through",
    "and it cost more than I thought",
    "and the time just flew",
    "though I made a bit of a mess",
    "and it felt good to get it done",
    "and I laughed a lot",
    "but my back hurts now",
    "and it was pretty relaxing",
    "which was a nice change",
    "and I forgot my umbrella",
    "and I'd recommend it",
]


def filler(count: int) -> list[str]:
    combos = list(itertools.product(TIMES, ACTIVITIES, REACTIONS))
    chosen = random.Random(5).sample(combos, count)
    return [f"{time}, {activity}, {reaction}." for time, activity, reaction in chosen]


async def test_planted_facts_are_recalled_late_in_a_long_conversation(
    tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    turns = filler(220)
    assert len(set(turns)) == 220
    # The facts come early (turns 1..40, a few weeks ago), interleaved with chit-chat; the
    # rest of the 240 turns is chit-chat since.
    script: list[str] = []
    for (fact, _), talk in zip(FACTS, turns[:20], strict=True):
        script += [fact, talk]
    script += turns[20:]
    start = NOW - timedelta(days=30)
    step = (NOW - start) / len(script)

    space = EmbeddingSpace(minilm.model_name, minilm.dimension)
    async with SqliteMemoryStore(tmp_path / "memory.db", space=space) as store:
        vectors = await minilm.embed(script)
        stored = await store.add(
            [
                NewMemory(ME, text, start + n * step, embedding=tuple(vector))
                for n, (text, vector) in enumerate(zip(script, vectors, strict=True))
            ]
        )
        ids = {item.text: item.id for item in stored}
        window = script[-10:]  # the last turns are in the prompt already
        missed = []
        for fact, question in FACTS:
            (query,) = await minilm.embed([question])
            hits = await store.search(
                [ME], text=question, vector=query, now=NOW, limit=5, exclude_texts=window
            )
            if ids[fact] not in {hit.item.id for hit in hits}:
                missed.append((question, [hit.item.text for hit in hits]))
    recall_at_5 = 1 - len(missed) / len(FACTS)
    assert recall_at_5 >= 0.9, missed
