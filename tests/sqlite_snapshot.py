"""Every row of every table of a SQLite file, to prove that a failed operation changed nothing."""

from pathlib import Path
from typing import Any

import sqlean

Snapshot = dict[str, list[tuple[Any, ...]]]

# The audit log records attempts, failed ones included, by design: it is not state a failed
# operation must leave alone.
NOT_STATE = ("audit_log",)
# A count of edits and deletions that tells a process holding a conversation's messages in
# memory to read them again: a discarded turn moves it, by design (its message is gone).
NOT_STATE_COLUMNS = {"conversations": ("messages_changed",)}


def sqlite_snapshot(path: Path, *, skip: tuple[str, ...] = NOT_STATE) -> Snapshot:
    conn = sqlean.connect(str(path))
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        snapshot = {}
        for name, sql in tables:
            if name in skip:
                continue
            # WITHOUT ROWID tables have no rowid; their primary key leads their columns.
            order = "1, 2" if "WITHOUT ROWID" in sql.upper() else "rowid"
            columns = [
                column
                for (_, column, *_) in conn.execute(f"PRAGMA table_info({name})")
                if column not in NOT_STATE_COLUMNS.get(name, ())
            ]
            listed = ", ".join(f'"{column}"' for column in columns)
            snapshot[name] = conn.execute(
                f"SELECT {listed} FROM {name} ORDER BY {order}"
            ).fetchall()
        return snapshot
    finally:
        conn.close()
