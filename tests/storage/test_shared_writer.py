"""The process's one writer per database file (``storage/sqlite/database.py``): stores share
it, concurrent writes commit together, a failed or cancelled write disturbs nobody else, and
reads never wait for writes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from personae.core.types import AccessRole, ApiKey, AuditEntry, NewMessage, Role
from personae.errors import StorageError
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.keys import SqliteKeyStore
from personae.storage.sqlite.writer import GroupCommitWriter


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    async with SqliteDatabase(tmp_path / "personae.db") as db:
        yield db


def writer_of(db: SqliteDatabase) -> GroupCommitWriter:
    assert db.writer is not None
    return db.writer


class Gate:
    """A write that holds the writer's thread until released, so that the writes queued
    behind it form one group, deterministically."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Connection) -> None:
        self.started.set()
        assert self.release.wait(10), "the test never released the writer"

    async def hold(self, db: SqliteDatabase) -> asyncio.Task[None]:
        task = asyncio.create_task(db.write("hold the writer", self))
        assert await asyncio.to_thread(self.started.wait, 10)
        return task


def insert_key(key_id: str) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO api_keys (id, secret_hash, role, subject, tenant, created_at)"
            " VALUES (?, 'h', 'user', 's', 't', '2026-01-01')",
            (key_id,),
        )

    return work


async def key_ids(db: SqliteDatabase) -> list[str]:
    def work(conn: Connection) -> list[str]:
        return [row[0] for row in conn.execute("SELECT id FROM api_keys ORDER BY id")]

    return await db.read("list keys", work)


def api_key(key_id: str) -> ApiKey:
    return ApiKey(key_id, "h" * 64, AccessRole.USER, "sam", "acme", datetime.now(UTC))


async def test_stores_on_one_database_write_concurrently_through_one_writer(
    database: SqliteDatabase,
) -> None:
    async with (
        SqliteConversationStore(database) as conversations,
        SqliteKeyStore(database) as keys,
        SqliteAuditLog(database) as audit,
    ):
        turns = [
            conversations.open_turn(external_user_id=f"u{i % 5}", character_id="alice", text=str(i))
            for i in range(40)
        ]
        others = [keys.add(api_key(f"k{i}")) for i in range(10)]
        others += [audit.record([AuditEntry("chat", f"u{i}", "ok")]) for i in range(10)]
        opened, *_ = await asyncio.gather(asyncio.gather(*turns), *others)

        writer = writer_of(database)
        assert writer.writes >= 60
        for user in (f"u{i}" for i in range(5)):
            found = await conversations.get_user(user)
            assert found is not None
            (conversation,) = await conversations.list_conversations(found.id)
            messages = await conversations.list_messages(conversation.id)
            # Seqs handed out once each, without gaps, though the writes came at once.
            assert [m.seq for m in messages] == list(range(1, 9))
        assert len(await keys.all_keys()) == 10
        assert len(await audit.query(limit=100)) == 10
        assert sorted(t.message.content for t in opened) == sorted(str(i) for i in range(40))


async def test_writes_waiting_together_are_committed_in_one_transaction(
    database: SqliteDatabase,
) -> None:
    gate = Gate()
    held = await gate.hold(database)
    before = writer_of(database).commits
    writes = [asyncio.create_task(database.write("add", insert_key(f"k{i}"))) for i in range(20)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in writes)  # nobody is told before the commit

    gate.release.set()
    await asyncio.gather(held, *writes)

    # The held write's own group, then one group (one BEGIN, one COMMIT) for the twenty.
    assert writer_of(database).commits - before == 2
    assert await key_ids(database) == sorted(f"k{i}" for i in range(20))


async def test_a_failed_write_rolls_back_only_its_own_work(database: SqliteDatabase) -> None:
    def half_then_fail(conn: Connection) -> None:
        insert_key("b")(conn)
        raise ValueError("the caller's own error")

    gate = Gate()
    held = await gate.hold(database)
    first = asyncio.create_task(database.write("add a", insert_key("a")))
    failing = asyncio.create_task(database.write("add b", half_then_fail))
    duplicate = asyncio.create_task(database.write("add a again", insert_key("a")))
    last = asyncio.create_task(database.write("add c", insert_key("c")))
    gate.release.set()
    await asyncio.gather(held, first, last)

    with pytest.raises(ValueError, match="the caller's own error"):
        await failing
    # A driver error comes back as a StorageError naming what was being done.
    with pytest.raises(StorageError, match="could not add a again"):
        await duplicate
    assert await key_ids(database) == ["a", "c"]


async def test_a_lone_failed_write_is_undone_whole_and_the_writer_goes_on(
    database: SqliteDatabase,
) -> None:
    def half_then_fail(conn: Connection) -> None:
        with transaction(conn):
            insert_key("half")(conn)
            raise ValueError("the caller's own error")

    before = writer_of(database).commits
    with pytest.raises(ValueError, match="the caller's own error"):
        await database.write("add half", half_then_fail)  # a group of one: no savepoint

    assert await key_ids(database) == []
    assert writer_of(database).commits == before  # rolled back, not committed empty
    await database.write("add b", insert_key("b"))
    assert await key_ids(database) == ["b"]


async def test_a_lone_write_gets_no_savepoint_of_the_writer_and_nested_ones_share_a_name(
    database: SqliteDatabase,
) -> None:
    statements: list[str] = []

    def nested(conn: Connection) -> None:
        with transaction(conn):
            insert_key("kept")(conn)
            with contextlib.suppress(ValueError), transaction(conn):
                insert_key("undone")(conn)
                raise ValueError("inner")
            insert_key("after")(conn)

    def trace(on: bool) -> Callable[[Connection], None]:
        return lambda conn: conn.set_trace_callback(statements.append if on else None)

    await database.write("trace", trace(True))
    await database.write("nest", nested)  # alone in its group
    await database.write("untrace", trace(False))

    assert await key_ids(database) == ["after", "kept"]  # ROLLBACK TO undid the inner only
    begin = statements.index("BEGIN IMMEDIATE")
    nest = statements[begin : statements.index("COMMIT", begin) + 1]
    assert [s for s in nest if not s.startswith("INSERT")] == [
        "BEGIN IMMEDIATE",
        "SAVEPOINT personae",  # the job's transaction(): the writer adds none to a lone write
        "SAVEPOINT personae",
        "ROLLBACK TO personae",
        "RELEASE personae",
        "RELEASE personae",
        "COMMIT",
    ]  # one text each: they stay in the statement cache with the stores' own SQL


async def test_a_write_that_ends_the_transaction_fails_its_whole_group(
    database: SqliteDatabase,
) -> None:
    # What SQLite does on a full disk or an I/O error: the whole transaction is gone, so
    # nobody in the group may be told their write is stored.
    def abandon(conn: Connection) -> None:
        conn.execute("ROLLBACK")
        raise OSError("disk full")

    gate = Gate()
    held = await gate.hold(database)
    before = asyncio.create_task(database.write("add a", insert_key("a")))
    broken = asyncio.create_task(database.write("break", abandon))
    gate.release.set()
    await held
    results = await asyncio.gather(before, broken, return_exceptions=True)

    assert [type(r) for r in results] == [OSError, OSError]
    assert await key_ids(database) == []
    await database.write("add b", insert_key("b"))  # the writer carries on
    assert await key_ids(database) == ["b"]


async def test_a_cancelled_caller_loses_and_corrupts_nothing(tmp_path: Path) -> None:
    async with (
        SqliteDatabase(tmp_path / "p.db") as database,
        SqliteConversationStore(database) as store,
    ):
        opened = await store.open_turn(external_user_id="u", character_id="alice", text="hi")
        conversation = opened.conversation.id
        gate = Gate()
        held = await gate.hold(database)
        replies = [
            asyncio.create_task(
                store.append_message(conversation, NewMessage(Role.ASSISTANT, f"r{i}"))
            )
            for i in range(6)
        ]
        await asyncio.sleep(0.01)
        replies[2].cancel()
        replies[4].cancel()
        gate.release.set()
        await held
        done = await asyncio.gather(*replies, return_exceptions=True)

        assert [isinstance(d, asyncio.CancelledError) for d in done] == [
            False, False, True, False, True, False
        ]  # fmt: skip
        messages = await store.list_messages(conversation)
        # A write already queued runs whole, as if its caller were still there (the turn's
        # own code decides what a lost caller means); everyone else's is untouched.
        assert [m.content for m in messages] == ["hi"] + [f"r{i}" for i in range(6)]
        assert [m.seq for m in messages] == list(range(1, 8))


async def test_reads_do_not_wait_for_writes_and_see_only_commits(
    database: SqliteDatabase,
) -> None:
    await database.write("add a", insert_key("a"))
    inside = threading.Event()
    release = threading.Event()

    def slow_write(conn: Connection) -> None:
        insert_key("b")(conn)
        inside.set()
        assert release.wait(10)

    writing = asyncio.create_task(database.write("add b slowly", slow_write))
    assert await asyncio.to_thread(inside.wait, 10)
    try:
        # The writer is mid-transaction with b inserted: a reader answers at once, from the
        # last commit.
        assert await asyncio.wait_for(key_ids(database), timeout=5) == ["a"]
    finally:
        release.set()
    await writing
    assert await key_ids(database) == ["a", "b"]


async def test_readers_refuse_to_write(database: SqliteDatabase) -> None:
    with pytest.raises(StorageError, match="could not sneak a write"):
        await database.read("sneak a write", insert_key("x"))
    assert await key_ids(database) == []


@pytest.mark.parametrize(("synchronous", "level"), [("normal", 1), ("full", 2)])
async def test_synchronous_is_the_setting_on_every_connection(
    tmp_path: Path, synchronous: Any, level: int
) -> None:
    def pragma(conn: Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    async with SqliteDatabase(tmp_path / "p.db", synchronous=synchronous) as db:
        assert await db.write("read the pragma", pragma) == level
        assert await db.read("read the pragma", pragma) == level


def test_a_bad_synchronous_or_reader_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="synchronous must be"):
        SqliteDatabase(tmp_path / "p.db", synchronous="off")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="at least one reader"):
        SqliteDatabase(tmp_path / "p.db", readers=0)


async def test_the_database_stays_open_until_its_last_store_closes(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "p.db")
    keys = SqliteKeyStore(database)
    audit = SqliteAuditLog(database)
    await keys.open()
    await audit.open()
    await keys.close()
    await keys.close()  # twice: counted once
    await audit.record([AuditEntry("chat", "u", "ok")])
    assert len(await audit.query()) == 1
    await audit.close()

    assert database.writer is None
    assert not [t for t in threading.enumerate() if t.name.startswith("personae-sqlite")]
    with pytest.raises(StorageError, match="not open"):
        await audit.query()
