"""Knowledge in a turn's memory note: recalled beside the user's memories (the character's
documents and the shared ones, never another character's), in a section of its own, each
line cited by document and chunk, within the recall budget."""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.core.memory.knowledge import Chunking
from personae.core.memory.stage import (
    KNOWLEDGE_HEADING,
    NOTE_OVERHEAD_TOKENS,
    RECALL_HEADING,
    MemoryBudget,
    MemoryStage,
)
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage, Role
from personae.knowledge.indexer import KnowledgeIndexer
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel, FakeEmbedder


async def turn_note(tmp_path: Path, question: str, budget: MemoryBudget) -> tuple[str, int]:
    """The memory note the model is sent for ``question`` to aria, and its token count."""
    root = tmp_path / "knowledge"
    for folder, name, text in [
        ("aria", "hours.md", "The tea room opens at eight and closes at six."),
        ("aria", "menu/cakes.html", "<p>Lemon <b>cake</b> is baked on Tuesdays.</p>"),
        ("_all", "policy.txt", "The tea room accepts cash and cards."),
        ("bram", "secret.txt", "The tea room key hides under the mat."),
    ]:
        (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(text)
    db, embedder, model = tmp_path / "p.db", FakeEmbedder(), FakeChatModel()
    space = EmbeddingSpace(embedder.model_name, embedder.dimension)
    async with (
        SqliteConversationStore(db) as conversations,
        SqliteMemoryStore(db, space=space) as memory,
    ):
        await KnowledgeIndexer(memory, root, embedder=embedder, chunking=Chunking(12, 2)).sync_all()
        opened = await conversations.open_turn(
            external_user_id="sam", character_id="aria", text="hello"
        )
        said = "I went to the tea room with my aunt."
        await memory.add(
            [NewMemory(Partition.private(opened.user.id, "aria"), said, datetime.now(UTC))]
        )
        service = ChatService(
            catalog=CharacterCatalog([Character(id="aria", name="Aria")]),
            store=conversations,
            routes=ModelRoutes({"fake": model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(),
            memory=MemoryStage(memory, embedder=embedder, budget=budget),
        )
        inbound = InboundMessage(user="sam", character_id="aria", text=question)
        async with aclosing(service.turn(inbound)) as events:
            async for _ in events:
                pass
    notes = [m.content for m in model.requests[-1].messages if m.role is Role.SYSTEM]
    (note,) = [n for n in notes if RECALL_HEADING in n or KNOWLEDGE_HEADING in n]
    return note, model.count_tokens(note)


async def test_documents_are_recalled_beside_memories_and_cited(tmp_path: Path) -> None:
    note, _ = await turn_note(tmp_path, "When does the tea room open?", MemoryBudget())
    memories, documents = note.split(KNOWLEDGE_HEADING)
    assert RECALL_HEADING in memories
    assert "The user said: I went to the tea room with my aunt." in memories
    lines = documents.strip().splitlines()
    assert "- [hours.md#0] The tea room opens at eight and closes at six." in lines
    assert "- [policy.txt#0] The tea room accepts cash and cards." in lines  # shared
    assert "key hides under the mat" not in note  # bram's documents are bram's


async def test_the_documents_stay_within_the_recall_budget(tmp_path: Path) -> None:
    budget = MemoryBudget(recall_tokens=25, profile_tokens=0)
    note, tokens = await turn_note(tmp_path, "When does the tea room open?", budget)
    assert KNOWLEDGE_HEADING in note
    assert tokens <= budget.recall_tokens + NOTE_OVERHEAD_TOKENS
    assert note.count("\n- ") < 4  # some hits did not fit
