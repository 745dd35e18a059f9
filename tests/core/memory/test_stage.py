"""The memory stage through ChatService, on the real SQLite stores, with a scripted model and
the word-hashing embedder: what the model is sent is what these tests read."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, aclosing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDone
from personae.core.memory.capture import memories_of
from personae.core.memory.indexing import EmbeddingJob
from personae.core.memory.items import EmbeddingSpace
from personae.core.memory.stage import PROFILE_HEADING, RECALL_HEADING, MemoryBudget, MemoryStage
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import ChatMessage, GenerationParams, InboundMessage, Role
from personae.errors import BackendUnavailable
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel, FakeEmbedder

MIRA = Character(id="mira", name="Mira", persona="{{char}} keeps a lighthouse.")
WINDOW_TURNS = 10

# Chit-chat that states no fact and shares no word with the planted memories.
FILLER = [
    "How was your morning?",
    "Tell me a story about ships.",
    "What do you think of rainy weather?",
    "Any plans for the weekend?",
    "That sounds nice.",
    "Really? Go on.",
]


class SlowEmbedder(FakeEmbedder):
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(5)
        return await super().embed(texts)


class Harness:
    def __init__(self, path: Path, embedder: FakeEmbedder, budget: MemoryBudget) -> None:
        self.model = FakeChatModel()
        self.embedder = embedder
        self.budget = budget
        self.conversations = SqliteConversationStore(path, remember=memories_of)
        self.memory = SqliteMemoryStore(
            path, space=EmbeddingSpace(embedder.model_name, embedder.dimension)
        )
        self.job = EmbeddingJob(self.memory, embedder)
        self.service = ChatService(
            catalog=CharacterCatalog([MIRA]),
            store=self.conversations,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            # A window of ten turns: two messages each.
            settings=TurnSettings(history_messages=2 * WINDOW_TURNS, user_name="Sam"),
            memory=MemoryStage(self.memory, embedder=embedder, facts=self.memory, budget=budget),
        )

    async def say(self, text: str, user: str = "sam") -> list[ChatMessage]:
        """One turn; the messages the model was sent."""
        inbound = InboundMessage(user=user, character_id="mira", text=text)
        async with aclosing(self.service.turn(inbound)) as events:
            assert isinstance([e async for e in events][-1], MessageDone)
        return list(self.model.requests[-1].messages)

    async def embed_pending(self) -> None:
        while await self.job.run_once():
            pass


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path / "p.db", FakeEmbedder(dimension=64), MemoryBudget())
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(h.conversations)
        await stack.enter_async_context(h.memory)
        yield h


def memory_note(messages: Sequence[ChatMessage]) -> str:
    notes = [
        m.content
        for m in messages
        if m.role is Role.SYSTEM and (PROFILE_HEADING in m.content or RECALL_HEADING in m.content)
    ]
    assert len(notes) <= 1  # one note, or none
    return notes[0] if notes else ""


def chat(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.content for m in messages if m.role is not Role.SYSTEM]


async def test_a_fact_from_turn_3_is_in_the_prompt_at_turn_300(harness: Harness) -> None:
    await harness.say("Hello there.")
    await harness.say("Nice to meet you.")
    await harness.say("My name is Sam Okafor and I live in Lisbon.")  # turn 3
    await harness.say("My sister is Ana. I like green tea.")
    for turn in range(5, 300):
        await harness.say(FILLER[turn % len(FILLER)])
    messages = await harness.say("Where do I live?")  # turn 300

    assert "My name is Sam Okafor and I live in Lisbon." not in chat(messages)  # out of window
    assert len(chat(messages)) <= 2 * WINDOW_TURNS + 1
    note = memory_note(messages)
    for fact in (
        "The user's name is Sam Okafor.",
        "The user lives in Lisbon.",
        "The user's sister is Ana.",
        "The user likes green tea.",
    ):
        assert f"- {fact}" in note
    # The note sits just before the user's message, as the other notes do.
    assert messages[-2].content == note
    assert messages[-1].content == "Where do I live?"


async def test_the_newest_value_of_a_fact_wins(harness: Harness) -> None:
    await harness.say("I live in Lisbon. I like tea.")
    await harness.say("I now live in Porto. I like jazz.")
    note = memory_note(await harness.say("Tell me something."))
    assert "- The user lives in Porto." in note
    assert "Lisbon" not in note  # the old value is neither profile nor recalled
    assert "- The user likes tea." in note
    assert "- The user likes jazz." in note  # likes accumulate


async def test_recall_brings_back_a_planted_memory_when_asked(harness: Harness) -> None:
    planted = "Grandma painted the old lighthouse door bright blue every spring."
    await harness.say(planted)
    for turn in range(30):
        await harness.say(FILLER[turn % len(FILLER)])
    await harness.embed_pending()
    messages = await harness.say("What colour was the lighthouse door?")
    assert planted not in chat(messages)  # long out of the window
    note = memory_note(messages)
    assert RECALL_HEADING in note
    assert f"The user said: {planted}" in note
    # Nothing in the window is repeated, the question itself included.
    assert "What colour was the lighthouse door?" not in note
    assert "Really? Go on." not in note


async def test_recall_falls_back_to_full_text_when_the_embedder_is_down(
    harness: Harness,
) -> None:
    planted = "The lighthouse keeper's cat is called Biscuit."
    await harness.say(planted)
    for turn in range(25):
        await harness.say(FILLER[turn % len(FILLER)])
    harness.embedder.fail_with = BackendUnavailable("embedder down", backend="emb")
    messages = await harness.say("Do you remember the keeper's cat?")
    assert planted in memory_note(messages)  # found by its words; the turn went on


async def test_a_slow_embedder_only_costs_its_timeout(tmp_path: Path) -> None:
    budget = MemoryBudget(embed_timeout_s=0.05)
    h = Harness(tmp_path / "p.db", SlowEmbedder(dimension=64), budget)
    async with h.conversations, h.memory:
        await h.say("I keep my boat at Cascais marina.")
        for turn in range(WINDOW_TURNS + 1):
            await h.say(FILLER[turn % len(FILLER)])
        async with asyncio.timeout(2):  # far below the embedder's five seconds
            messages = await h.say("Where is my boat?")
    assert "Cascais marina" in memory_note(messages)


async def test_another_users_memory_never_reaches_the_prompt(harness: Harness) -> None:
    await harness.say("My name is Alice Moreau. I love sailing near Sintra.", user="alice")
    await harness.embed_pending()
    messages = await harness.say("What is my name? Do I love sailing near Sintra?", user="bob")
    note = memory_note(messages)
    assert "Alice" not in note
    assert "Alice" not in " ".join(m.content for m in messages)
    assert "The user loves sailing" not in note
    # Alice still gets hers.
    assert "Alice Moreau" in memory_note(await harness.say("Who am I?", user="alice"))


async def test_a_broken_memory_store_does_not_fail_the_turn(harness: Harness) -> None:
    await harness.say("My name is Sam.")
    await harness.memory.close()  # every memory read now fails
    messages = await harness.say("What is my name?")
    assert memory_note(messages) == ""
    assert messages[-1].content == "What is my name?"


async def test_budgets_bound_the_note(tmp_path: Path) -> None:
    # FakeChatModel counts words: the heading is eight, "- The user likes x." five.
    budget = MemoryBudget(profile_tokens=8 + 10, recall_items=0)
    h = Harness(tmp_path / "p.db", FakeEmbedder(), budget)
    async with h.conversations, h.memory:
        await h.say("I like tea. I like jazz. I like boats. I like cats.")
        note = memory_note(await h.say("Hi"))
    assert note.count("- The user likes") == 2
    assert RECALL_HEADING not in note


async def test_the_prompt_with_its_note_stays_within_the_context(tmp_path: Path) -> None:
    h = Harness(tmp_path / "p.db", FakeEmbedder(), MemoryBudget(recall_tokens=60))
    h.model = FakeChatModel(context_window=400)
    h.service = ChatService(
        catalog=CharacterCatalog([MIRA]),
        store=h.conversations,
        routes=ModelRoutes({"fake": h.model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(generation=GenerationParams(max_tokens=50)),
        memory=MemoryStage(h.memory, embedder=h.embedder, facts=h.memory, budget=h.budget),
    )
    async with h.conversations, h.memory:
        await h.say("My name is Sam. I like tea. I live in Lisbon. My dog is Rex.")
        for turn in range(40):
            await h.say(f"{FILLER[turn % len(FILLER)]} Tea and Rex and Lisbon again.")
        messages = await h.say("Tell me about tea, Rex and Lisbon.")
    assert memory_note(messages)
    used = sum(h.model.count_tokens(m.content) + 4 for m in messages)
    assert used <= 400 - 50


NAMES = ["Ana", "Bruno", "Carla", "Diogo", "Eva", "Filipa"]
CITIES = ["Lisbon", "Porto", "Braga", "Faro", "Evora", "Coimbra"]
RUNS = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    told=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(NAMES), st.sampled_from(CITIES)),
        min_size=1,
        max_size=8,
    )
)
async def test_no_user_ever_sees_another_users_memory(
    harness: Harness, told: list[tuple[int, str, str]]
) -> None:
    run = next(RUNS)  # fresh users each example, on the same stores
    said: dict[int, set[str]] = {}
    for user, name, city in told:
        await harness.say(f"My name is {name}. I live in {city}.", user=f"u{run}-{user}")
        said.setdefault(user, set()).update((name, city))
    await harness.embed_pending()
    for user in range(4):
        messages = await harness.say("Who am I and where do I live?", user=f"u{run}-{user}")
        text = " ".join(m.content for m in messages)
        others = set(NAMES + CITIES) - said.get(user, set())
        assert not [word for word in others if word in text]
