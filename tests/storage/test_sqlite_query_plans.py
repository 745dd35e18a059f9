"""The queries every turn runs are answered from their indexes: a plan that scans a table or
sorts in a temporary B-tree grows with the data, one turn after another."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.storage.sqlite import conversations, memory_rows
from personae.storage.sqlite.connection import connect
from personae.storage.sqlite.migrations import migrate

PER_TURN = {
    "user turns": (conversations.USER_TURNS, ("conv",), "messages_user_turns"),
    "memory facts": (memory_rows.FACTS, ("user", "mira", "private", 10), "memory_items_facts"),
}


@pytest.mark.parametrize("name", sorted(PER_TURN))
def test_a_per_turn_query_uses_its_own_index(tmp_path: Path, name: str) -> None:
    query, args, index = PER_TURN[name]
    conn = connect(tmp_path / "plans.sqlite3")
    try:
        migrate(conn)
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", args)]
    finally:
        conn.close()
    assert any(
        f"USING COVERING INDEX {index}" in step or f"USING INDEX {index}" in step for step in plan
    ), plan
    assert not any(step.startswith("SCAN") or "TEMP B-TREE" in step for step in plan), plan
