"""Recall into the prompt with the packaged MiniLM: memories told early, asked about late in
other words (no shared content word), reach the note the model is sent."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.memory.capture import memories_of
from personae.core.memory.indexing import EmbeddingJob
from personae.core.memory.items import EmbeddingSpace
from personae.core.memory.stage import RECALL_HEADING, MemoryBudget, MemoryStage
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage, Role
from personae.embedders.sentence_transformers import SentenceTransformerEmbedder
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel

pytestmark = pytest.mark.slow

PLANTED = [
    ("My sister Clara moved to Lisbon last year.", "Which city does my sibling live in now?"),
    ("I'm allergic to peanuts, so I always check labels.", "Is any food dangerous for me?"),
    ("I play the cello in a community orchestra.", "What musical instrument do I own?"),
]
FILLER = [
    "How was your morning?",
    "Tell me a story about ships.",
    "What do you think of rainy weather?",
    "Any plans for the weekend?",
    "That sounds nice.",
    "Really? Go on.",
]


async def test_minilm_recall_puts_paraphrased_memories_into_the_prompt(
    tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    path = tmp_path / "p.db"
    model = FakeChatModel()
    space = EmbeddingSpace(minilm.model_name, minilm.dimension)
    async with (
        SqliteConversationStore(path, remember=memories_of) as conversations,
        SqliteMemoryStore(path, space=space) as memory,
    ):
        service = ChatService(
            catalog=CharacterCatalog([Character(id="mira", name="Mira")]),
            store=conversations,
            routes=ModelRoutes({"fake": model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(history_messages=20),
            memory=MemoryStage(
                memory, embedder=minilm, facts=memory, budget=MemoryBudget(embed_timeout_s=10)
            ),
        )

        async def say(text: str) -> str:
            inbound = InboundMessage(user="sam", character_id="mira", text=text)
            async with aclosing(service.turn(inbound)) as events:
                async for _ in events:
                    pass
            sent = model.requests[-1].messages
            return "\n".join(m.content for m in sent if m.role is Role.SYSTEM)

        for statement, _ in PLANTED:
            await say(statement)
        for turn in range(40):
            await say(FILLER[turn % len(FILLER)])
        job = EmbeddingJob(memory, minilm)
        while await job.run_once():
            pass
        for statement, question in PLANTED:
            system = await say(question)
            assert RECALL_HEADING in system
            assert statement in system, question
