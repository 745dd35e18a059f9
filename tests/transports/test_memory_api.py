"""Memory in the running server: turns over HTTP write and read it, erasing a user erases
their memory (and says so), and the embedding job runs under the supervisor, picking up at
start what was left pending."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import sqlean

from personae.app import build_app
from personae.core.memory.capture import memories_of
from personae.core.memory.stage import PROFILE_HEADING
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import make_settings
from tests.transports.security_helpers import deployment

FULL_TEXT_MEMORY = {"enabled": True, "embedder": "none"}


def memory_rows(db: Path) -> dict[str, int]:
    """Memory items per external user id."""
    conn = sqlean.connect(str(db))
    try:
        rows = conn.execute(
            "SELECT u.external_id, count(*) FROM memory_items m"
            " JOIN users u ON u.id = m.user_id GROUP BY u.external_id"
        ).fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM memory_items WHERE user_id NOT IN (SELECT id FROM users)"
        ).fetchone()[0]
    finally:
        conn.close()
    return {**dict(rows), **({"?": orphans} if orphans else {})}


def test_a_fact_told_over_http_is_in_the_next_prompt(tmp_path: Path) -> None:
    with deployment(tmp_path, memory=FULL_TEXT_MEMORY) as d:
        assert d.chat("alice", text="My name is Alice Moreau.").status_code == 200
        assert d.chat("alice", text="Who am I?").status_code == 200
        system = [m.content for m in d.model.requests[-1].messages if m.role == "system"]
    assert any(
        PROFILE_HEADING in text and "- The user's name is Alice Moreau." in text for text in system
    )


def test_a_users_export_holds_their_memory_and_no_one_elses(tmp_path: Path) -> None:
    with deployment(tmp_path, memory=FULL_TEXT_MEMORY) as d:
        assert d.chat("alice", text="My name is Alice. I love sailing.").status_code == 200
        assert d.chat("bob", text="My name is Bob.").status_code == 200
        export = d.call("alice", "GET", "/api/users/alice/export")
        assert export.status_code == 200, export.text
        memory = export.json()["memory"]
    assert len(memory) == 4  # her message, two facts, the reply
    assert {m["character"] for m in memory} == {"aria"}
    texts = " ".join(m["text"] for m in memory)
    assert "sailing" in texts
    assert "Bob" not in texts


def test_erasing_a_user_erases_their_memory_and_says_so(tmp_path: Path) -> None:
    with deployment(tmp_path, memory=FULL_TEXT_MEMORY) as d:
        assert d.chat("alice", text="My name is Alice. I love sailing.").status_code == 200
        assert d.chat("bob", text="My name is Bob.").status_code == 200
        before = memory_rows(d.db)
        # alice: her message, two facts, the reply; bob: message, fact, reply
        assert before == {"alice": 4, "bob": 3}
        erased = d.call("alice", "DELETE", "/api/users/alice")
        assert erased.status_code == 200, erased.text
        assert erased.json()["memory"] == {"erased": True, "items": 4}
        assert memory_rows(d.db) == {"bob": 3}  # bob's stay; nothing of alice's is orphaned
        audit = d.call("admin", "GET", "/api/admin/audit", params={"action": "user.delete"})
        assert audit.json()[0]["details"]["memory_erased"] is True
        # Erasing again (nothing left) is no error.
        again = d.call("alice", "DELETE", "/api/users/alice").json()
        assert again["memory"] == {"erased": True, "items": 0}


def test_with_memory_off_nothing_is_written_and_erasure_says_it_is_off(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        assert d.chat("alice", text="My name is Alice.").status_code == 200
        assert memory_rows(d.db) == {}
        erased = d.call("alice", "DELETE", "/api/users/alice").json()
        assert erased["memory"] == {"erased": False, "reason": "long-term memory is off"}


async def leave_pending(db: Path) -> None:
    """Items left pending, as by a server killed before its job ran."""
    async with SqliteConversationStore(db, remember=memories_of) as store:
        await store.open_turn(external_user_id="sam", character_id="aria", text="I like kites.")


@pytest.mark.slow
def test_the_job_embeds_what_was_left_pending_and_new_turns(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, memory={"enabled": True, "embedder": "minilm"})
    asyncio.run(leave_pending(settings.database_path))
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        body = {"model": "aria", "user": "sam", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 200
        deadline = time.monotonic() + 60
        while pending(settings.database_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
    assert pending(settings.database_path) == 0
    assert "ok" in str(ready)
    assert "task:memory-embedder" in str(ready)
    conn = sqlean.connect(str(settings.database_path))
    try:
        models = {r[0] for r in conn.execute("SELECT DISTINCT embedding_model FROM memory_items")}
        count = conn.execute("SELECT count(*) FROM memory_items").fetchone()[0]
    finally:
        conn.close()
    assert models == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert count == 4  # pending: message + fact; the new turn: message + reply


def pending(db: Path) -> int:
    conn = sqlean.connect(str(db))
    try:
        row = conn.execute("SELECT count(*) FROM memory_items WHERE embedding_model IS NULL")
        return int(row.fetchone()[0])
    finally:
        conn.close()


def test_a_user_reads_and_forgets_its_own_memory_only(tmp_path: Path) -> None:
    with deployment(tmp_path, memory=FULL_TEXT_MEMORY) as d:
        assert d.chat("alice", text="My name is Alice. I love sailing.").status_code == 200
        assert d.chat("bob", text="My name is Bob.").status_code == 200
        shown = d.call("alice", "GET", "/api/memory")
        assert shown.status_code == 200, shown.text
        items = shown.json()
        assert {i["character"] for i in items} == {"aria"}
        assert any("sailing" in i["text"] for i in items)
        assert not any("Bob" in i["text"] for i in items)
        assert d.call("alice", "GET", "/api/memory", params={"user": "bob"}).status_code == 403

        # Bob's item is not Alice's to forget, nor to see: it looks unknown.
        bobs = d.call("bob", "GET", "/api/memory").json()
        assert d.call("alice", "DELETE", f"/api/memory/{bobs[0]['id']}").status_code == 404

        one = next(i for i in items if "sailing" in i["text"] and i["kind"] != "message")
        forgot = d.call("alice", "DELETE", f"/api/memory/{one['id']}")
        assert forgot.json() == {"forgotten": 1}
        left = [i["id"] for i in d.call("alice", "GET", "/api/memory").json()]
        assert one["id"] not in left
        assert len(left) == len(items) - 1

        everything = d.call("alice", "DELETE", "/api/memory", params={"character": "aria"})
        assert everything.json() == {"forgotten": len(left)}
        assert d.call("alice", "GET", "/api/memory").json() == []
        assert len(d.call("bob", "GET", "/api/memory").json()) == len(bobs)  # untouched
        audit = d.call("admin", "GET", "/api/admin/audit", params={"action": "memory.forget"})
        assert [row["details"]["items"] for row in audit.json()] == [1, len(left)]


def test_with_memory_off_nothing_is_shown_or_forgotten(tmp_path: Path) -> None:
    with deployment(tmp_path) as d:
        assert d.chat("alice", text="My name is Alice.").status_code == 200
        assert d.call("alice", "GET", "/api/memory").json() == []
        assert d.call("alice", "DELETE", "/api/memory").json() == {"forgotten": 0}
        assert d.call("alice", "DELETE", "/api/memory/mem_x").status_code == 404
