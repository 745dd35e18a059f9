"""WAL checkpoints run on a thread of their own, never inside a commit (checkpointer.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlean
from structlog.testing import capture_logs

from personae.storage.sqlite.checkpointer import Checkpointer
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.writer import GroupCommitWriter
from tests.channels.helpers import eventually
from tests.storage.test_shared_writer import insert_key


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    async with SqliteDatabase(tmp_path / "personae.db") as db:
        yield db


def checkpointer_of(db: SqliteDatabase) -> Checkpointer:
    writer = db.writer
    assert isinstance(writer, GroupCommitWriter)
    return writer.checkpointer


async def test_the_writer_never_checkpoints_in_a_commit(database: SqliteDatabase) -> None:
    def autocheckpoint(conn: Connection) -> int:
        return int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

    assert await database.write("read the pragma", autocheckpoint) == 0


async def test_committed_pages_are_copied_into_the_file_by_the_checkpointer(
    database: SqliteDatabase,
) -> None:
    checkpointer = checkpointer_of(database)
    await eventually(lambda: checkpointer.checkpoints >= 1)  # the migration's commit
    before = checkpointer.checkpoints
    await asyncio.gather(*(database.write("add", insert_key(f"k{i}")) for i in range(50)))

    await eventually(lambda: checkpointer.checkpoints > before)
    last = checkpointer.last
    assert last is not None
    assert not last.busy
    assert last.wal_frames > 0
    assert last.copied_frames == last.wal_frames  # no reader pinned anything: all copied


async def test_commits_do_not_wait_for_a_checkpoint_under_way(
    database: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = checkpointer_of(database)
    await eventually(lambda: checkpointer.checkpoints >= 1)
    await asyncio.sleep(checkpointer.interval)  # past the pause: the next commit wakes it
    started, release = threading.Event(), threading.Event()
    slow = checkpointer._checkpoint

    def stuck() -> None:
        started.set()
        assert release.wait(10), "the test never released the checkpoint"
        slow()

    monkeypatch.setattr(checkpointer, "_checkpoint", stuck)
    try:
        await database.write("add", insert_key("first"))
        assert await asyncio.to_thread(started.wait, 5)
        # The checkpoint is stuck; writes go on committing all the same.
        await asyncio.wait_for(
            asyncio.gather(*(database.write("add", insert_key(f"k{i}")) for i in range(20))),
            timeout=5,
        )
    finally:
        release.set()


class FailingConnection:
    """Stands for the checkpointer's connection when the disk refuses."""

    def __init__(self, real: Connection) -> None:
        self.real = real

    def execute(self, sql: str, *args: Any) -> Any:
        raise sqlean.OperationalError("disk I/O error")

    def close(self) -> None:
        self.real.close()


async def test_a_failed_checkpoint_is_logged_and_loses_nothing(
    database: SqliteDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = checkpointer_of(database)
    await eventually(lambda: checkpointer.checkpoints >= 1)
    monkeypatch.setattr(checkpointer, "interval", 0.0)
    monkeypatch.setattr(checkpointer, "_conn", FailingConnection(checkpointer._conn))
    with capture_logs() as logs:
        await database.write("add", insert_key("kept"))
        await eventually(lambda: any(e["event"] == "wal checkpoint failed" for e in logs))

    failed = next(e for e in logs if e["event"] == "wal checkpoint failed")
    assert failed["log_level"] == "warning"
    assert "disk I/O error" in failed["error"]

    def keys(conn: Connection) -> list[str]:
        return [row[0] for row in conn.execute("SELECT id FROM api_keys")]

    assert await database.read("list keys", keys) == ["kept"]


async def test_closing_stops_the_thread_and_leaves_no_wal(tmp_path: Path) -> None:
    path = tmp_path / "personae.db"
    async with SqliteDatabase(path) as db:
        await db.write("add", insert_key("k"))
        checkpointer = checkpointer_of(db)
    assert not checkpointer._thread.is_alive()
    assert not path.with_name(path.name + "-wal").exists()  # all of it is in the file
    conn = sqlean.connect(str(path))
    try:
        assert conn.execute("SELECT id FROM api_keys").fetchall() == [("k",)]
    finally:
        conn.close()
