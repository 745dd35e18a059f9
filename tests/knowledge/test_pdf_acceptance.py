"""Issue #5, point 5: a question answerable only from a PDF attached to the character gets
the right chunk into the prompt the model is sent, cited by document and chunk, with the
packaged MiniLM embedder and a scripted model that records its prompt."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.memory.items import EmbeddingSpace
from personae.core.memory.knowledge import Chunking
from personae.core.memory.stage import KNOWLEDGE_HEADING, MemoryBudget, MemoryStage
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.tracing import Attribute, Span, Tracer
from personae.core.types import InboundMessage, Role
from personae.embedders.sentence_transformers import SentenceTransformerEmbedder
from personae.knowledge.indexer import KnowledgeIndexer, SyncReport
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeChatModel
from tests.knowledge.pdfs import make_pdf

pytestmark = pytest.mark.slow

#: A visitor guide, one topic per page; the question below shares no content word with the
#: ferry page ("boat", "mainland", "morning" vs "ferry", "harbour", "07:40").
GUIDE = [
    ["Lighthouse museum: the tower of Cape Wren was built in 1871.",
     "Guided climbs of its 212 steps start every hour from the gift shop."],
    ["Island ferry: the Saltwind ferry to Port Amsel leaves the north harbour",
     "at 07:40 and 16:15 on weekdays; tickets are sold on board."],
    ["Bicycle hire: bikes can be rented at Fenn's garage next to the church.",
     "Helmets are free, and e-bikes need a deposit of forty euros."],
    ["Seal colony: grey seals rest on the sandbanks west of the dunes.",
     "Keep three hundred metres away and never feed them."],
    ["Bakery: the village bakery sells rye bread and plum cake until noon.",
     "On Sundays it is closed."],
]  # fmt: skip
QUESTION = "What time in the morning can I catch the boat back to the mainland?"


class RecordingSpan(Span):
    recording = True

    def __init__(self, attributes: dict[str, Attribute]) -> None:
        self.attributes = attributes

    def set(self, **attributes: Attribute) -> None:
        self.attributes.update(attributes)


class RecordingTracer(Tracer):
    """The far side of the tracing port: keeps the attributes of each turn span."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Attribute]] = []

    def start(self, name: str, **attributes: Attribute) -> Span:
        self.turns.append(dict(attributes))
        return RecordingSpan(self.turns[-1])


async def test_a_question_answered_only_by_an_attached_pdf_gets_its_chunk_into_the_prompt(
    tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    knowledge = tmp_path / "knowledge" / "mira"
    knowledge.mkdir(parents=True)
    (knowledge / "visitor-guide.pdf").write_bytes(make_pdf(GUIDE))
    db = tmp_path / "p.db"
    space = EmbeddingSpace(minilm.model_name, minilm.dimension)
    model, tracer = FakeChatModel(), RecordingTracer()
    async with (
        SqliteConversationStore(db) as conversations,
        SqliteMemoryStore(db, space=space) as memory,
    ):
        indexer = KnowledgeIndexer(
            memory, tmp_path / "knowledge", embedder=minilm, chunking=Chunking(25, 5)
        )
        report = await indexer.sync_all()
        assert report.indexed == 1
        assert report.chunks_added >= 4  # several chunks compete; one answers
        service = ChatService(
            catalog=CharacterCatalog([Character(id="mira", name="Mira")]),
            store=conversations,
            routes=ModelRoutes({"fake": model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(),
            tracer=tracer,
            memory=MemoryStage(
                memory, embedder=minilm, budget=MemoryBudget(recall_items=1, embed_timeout_s=10)
            ),
        )
        inbound = InboundMessage(user="sam", character_id="mira", text=QUESTION)
        async with aclosing(service.turn(inbound)) as events:
            async for _ in events:
                pass
        assert await indexer.sync_all() == SyncReport(unchanged=1)  # nothing re-embedded

    (note,) = [m.content for m in model.requests[-1].messages if KNOWLEDGE_HEADING in m.content]
    assert "Saltwind ferry" in note
    (line,) = [line for line in note.splitlines() if line.startswith("- [")]
    assert line.startswith("- [visitor-guide.pdf#")  # cited by document and chunk
    assert "07:40" in line  # the cited chunk is the one that answers
    citation = line[3 : line.index("]")]
    assert tracer.turns[-1]["knowledge"] == citation
    assert model.requests[-1].messages[-1].role is Role.USER  # the note comes before it
