"""``personae memory show|forget`` against a real database file."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.cli import cli
from personae.core.memory.items import NewMemory, Partition
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.memory import SqliteMemoryStore


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["memory", *args, "--config-dir", str(config)])
    return result.exit_code, result.stdout + result.stderr


async def remember(db: Path, facts: dict[tuple[str, str], list[str]]) -> None:
    async with SqliteConversationStore(db) as store, SqliteMemoryStore(db) as memory:
        for (user, character), texts in facts.items():
            opened = await store.open_turn(external_user_id=user, character_id=character, text="hi")
            partition = Partition.private(opened.user.id, character)
            now = datetime.now(UTC)
            await memory.add([NewMemory(partition, t, now, kind="fact") for t in texts])


def show(config: Path, *args: str) -> list[dict[str, str]]:
    code, out = run(config, "show", *args, "--json")
    assert code == 0, out
    return list(json.loads(out))


def test_show_and_forget_what_is_remembered_of_a_user(config: Path) -> None:
    db = Settings(data_dir=config / "data").database_path
    asyncio.run(
        remember(
            db,
            {
                ("ana", "aria"): ["Ana sails.", "Ana lives in Porto."],
                ("ana", "bram"): ["Ana likes tea."],
                ("ben", "aria"): ["Ben plays chess."],
            },
        )
    )
    assert sorted(r["text"] for r in show(config, "ana")) == [
        "Ana likes tea.",
        "Ana lives in Porto.",
        "Ana sails.",
    ]
    assert [r["text"] for r in show(config, "ana", "--character", "bram")] == ["Ana likes tea."]

    sails = next(r["id"] for r in show(config, "ana") if r["text"] == "Ana sails.")
    code, out = run(config, "forget", "ana", "--item", sails)
    assert (code, out.strip()) == (0, "forgot 1 memory item(s) of ana")
    code, out = run(config, "forget", "ben", "--item", show(config, "ana")[0]["id"])
    assert code != 0  # ana's item is not ben's to forget
    assert "has no memory item" in out

    code, out = run(config, "forget", "ana")
    assert (code, out.strip()) == (0, "forgot 2 memory item(s) of ana")
    assert show(config, "ana") == []
    assert [r["text"] for r in show(config, "ben")] == ["Ben plays chess."]  # untouched
    assert show(config, "nobody") == []

    async def actions() -> list[tuple[str, str]]:
        async with SqliteAuditLog(db) as log:
            rows = await log.query(action="memory.forget", limit=10)
            return [(r.target or "", r.details["items"]) for r in rows]

    assert asyncio.run(actions()) == [(sails, "1"), ("*", "2")]
