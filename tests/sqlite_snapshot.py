"""Every row of every table of a SQLite file, to prove that a failed operation changed nothing."""

from pathlib import Path
from typing import Any

import sqlean

Snapshot = dict[str, list[tuple[Any, ...]]]


def sqlite_snapshot(path: Path) -> Snapshot:
    conn = sqlean.connect(str(path))
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    finally:
        conn.close()
