"""``personae memory reindex`` against a real database file, with the packaged MiniLM: the
documents are re-read, items left by another embedder are embedded again, one partition can
be re-embedded alone, and what cannot be done is a clear error with a non-zero exit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.cli import cli
from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from personae.testing import FakeEmbedder
from tests.knowledge.pdfs import make_pdf

pytestmark = pytest.mark.slow


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    knowledge = tmp_path / "knowledge"
    (knowledge / "aria").mkdir(parents=True)
    (knowledge / "aria" / "guide.pdf").write_bytes(make_pdf([["The ferry leaves at nine."]]))
    (knowledge / "aria" / "notes.md").write_text("Aria's cat is called Pepper.")
    (tmp_path / "personae.yaml").write_text(
        f"memory:\n  enabled: true\n  knowledge_dir: {knowledge}\n  batch_size: 2\n"
    )
    return tmp_path


def run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["memory", "reindex", *args, "--config-dir", str(config)])
    return result.exit_code, result.stdout + result.stderr


async def remember_with_another_embedder(db: Path) -> None:
    """Three items of sam's, embedded by a model that is no longer configured."""
    old = FakeEmbedder()
    space = EmbeddingSpace(old.model_name, old.dimension)
    async with SqliteConversationStore(db) as store, SqliteMemoryStore(db, space=space) as memory:
        opened = await store.open_turn(external_user_id="sam", character_id="aria", text="hi")
        partition = Partition.private(opened.user.id, "aria")
        texts = ["I sail on Sundays.", "My sister is Clara.", "I live in Porto."]
        vectors = await old.embed(texts)
        now = datetime.now(UTC)
        await memory.add(
            [
                NewMemory(partition, t, now, embedding=tuple(v))
                for t, v in zip(texts, vectors, strict=True)
            ]
        )


def test_reindex_reads_the_documents_and_embeds_what_another_model_left(config: Path) -> None:
    asyncio.run(remember_with_another_embedder(Settings(data_dir=config / "data").database_path))

    code, out = run(config)

    assert code == 0, out
    assert "documents: 2 indexed, 0 unchanged, 0 removed, 0 unreadable" in out
    assert "embedded 2\nembedded 3\n" in out  # progress per batch of 2
    assert out.rstrip().endswith("embedded 3 memory item(s)")

    code, out = run(config)  # nothing changed, nothing left to embed
    assert code == 0, out
    assert "documents: 0 indexed, 2 unchanged" in out
    assert out.rstrip().endswith("embedded 0 memory item(s)")

    code, out = run(config, "--character", "aria")  # one partition, whatever its vectors
    assert code == 0, out
    assert "embedded 2/2" in out

    code, out = run(config, "--user", "sam", "--character", "aria")
    assert code == 0, out
    assert "documents:" not in out  # a user's memory only
    assert "embedded 2/3\nembedded 3/3\n" in out


def test_an_unreadable_document_fails_the_run_and_keeps_its_chunks(config: Path) -> None:
    assert run(config)[0] == 0
    (config / "knowledge" / "aria" / "guide.pdf").write_bytes(b"%PDF-1.4\nbroken")

    code, out = run(config)

    assert code == 1
    assert "guide.pdf: not a readable PDF" in out  # the log line names it
    assert "0 indexed, 1 unchanged, 0 removed, 1 unreadable" in out


def test_what_cannot_be_reindexed_is_a_clear_error(config: Path) -> None:
    code, out = run(config, "--user", "nobody")
    assert code == 2
    assert "nothing is remembered of user 'nobody'" in out

    with (config / "personae.yaml").open("a") as file:
        file.write("  embedder: none\n")
    code, out = run(config)
    assert code == 2
    assert "re-indexing needs an embedder" in out
