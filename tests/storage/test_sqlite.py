"""What only the SQLite store promises: its file, pragmas, migrations and locking."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlean

from personae.core.types import Message, MessageStatus, NewMessage, Role
from personae.errors import StorageError
from personae.storage.sqlite import SqliteConversationStore, conversations
from personae.storage.sqlite.connection import connect
from personae.storage.sqlite.migrations import (
    Migration,
    load_migrations,
    migrate,
    split_statements,
)
from personae.storage.sqlite.rows import MESSAGE_COLUMNS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "personae.db"  # the parent does not exist yet


@pytest.fixture
def raw(path: Path) -> Iterator[Any]:
    """A plain second connection to the store's file, for looking underneath it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlean.connect(str(path), isolation_level=None)
    yield conn
    conn.close()


def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql)]


def count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_open_creates_the_file_in_wal_mode_with_the_default_pragmas(path: Path) -> None:
    async with SqliteConversationStore(path) as store:
        pragmas = await store._db.run(
            "read pragmas",
            lambda c: [
                c.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ],
        )
    assert await asyncio.to_thread(path.exists)
    # synchronous 1 is NORMAL: durable against kill -9 (test_durability.py), not power loss.
    assert pragmas == ["wal", 1, 1, 5000]


async def test_data_survives_close_and_reopen(path: Path) -> None:
    async with SqliteConversationStore(path) as store:
        opened = await store.open_turn(external_user_id="u1", character_id="alice", text="hi")
        await store.append_message(opened.conversation.id, NewMessage(Role.ASSISTANT, "hello"))

    async with SqliteConversationStore(path) as store:
        assert await store.get_user("u1") == opened.user
        messages = await store.list_messages(opened.conversation.id)
        assert [(m.seq, m.content) for m in messages] == [(1, "hi"), (2, "hello")]
        again = await store.open_turn(external_user_id="u1", character_id="alice", text="back")
        assert again.conversation.id == opened.conversation.id
        assert again.message.seq == 3


async def test_migrations_run_once_across_reopens(path: Path, raw: Any) -> None:
    for _ in range(3):
        async with SqliteConversationStore(path) as store:
            await store.open_turn(external_user_id="u1", character_id="alice", text="hi")

    expected = [(m.version, m.name) for m in load_migrations()]
    assert rows(raw, "SELECT version, name FROM schema_migrations ORDER BY version") == expected
    assert migrate(raw) == []
    assert count(raw, "messages") == 3


async def test_upgrading_to_character_versions_keeps_the_old_messages(path: Path, raw: Any) -> None:
    before = [m for m in load_migrations() if m.version < 3]
    migrate(raw, before)  # a database written by the previous release
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    raw.execute("INSERT INTO users VALUES ('usr_1', 'u1', ?)", (stamp,))
    raw.execute(
        "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at, last_seq)"
        " VALUES ('conv_1', 'usr_1', 'alice', ?, ?, 1)",
        (stamp, stamp),
    )
    raw.execute(
        "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at)"
        " VALUES ('msg_1', 'conv_1', 1, 'assistant', 'old reply', 'complete', ?)",
        (stamp,),
    )

    async with SqliteConversationStore(path) as store:
        (old,) = await store.list_messages("conv_1")
        new = await store.append_message(
            "conv_1", NewMessage(Role.ASSISTANT, "new reply", character_version="ab" * 32)
        )

    assert (old.content, old.character_version) == ("old reply", None)
    assert new.character_version == "ab" * 32
    assert rows(raw, "SELECT max(version) FROM schema_migrations") == [(len(load_migrations()),)]


async def test_a_newer_schema_is_refused(path: Path, raw: Any) -> None:
    async with SqliteConversationStore(path):
        pass
    raw.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', ?)",
        (datetime.now(UTC).isoformat(),),
    )

    store = SqliteConversationStore(path)
    with pytest.raises(StorageError, match="newer than this version") as caught:
        await store.open()

    assert caught.value.context["schema_version"] == 9999
    # The failed open closed what it opened: no worker thread is left behind.
    assert not [t for t in threading.enumerate() if t.name.startswith("personae-sqlite")]
    with pytest.raises(StorageError):
        await store.get_user("u1")


def test_a_failed_migration_is_rolled_back(raw: Any) -> None:
    good = Migration(1, "good", "CREATE TABLE a (x);")
    bad = Migration(2, "bad", "CREATE TABLE b (x);\nCREATE TABLE a (x);")

    with pytest.raises(sqlean.OperationalError):
        migrate(raw, [good, bad])

    assert rows(raw, "SELECT version FROM schema_migrations") == [(1,)]
    tables = {name for (name,) in rows(raw, "SELECT name FROM sqlite_master")}
    assert "a" in tables
    assert "b" not in tables
    assert not raw.in_transaction


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');  INSERT INTO t VALUES (';');
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        UPDATE t SET x = x || ';';
    END;
    -- trailing comment
    """
    statements = list(split_statements(script))

    assert len(statements) == 4
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[2].startswith("CREATE TRIGGER")
    assert statements[2].endswith("END;")
    assert statements[3] == "-- trailing comment"


def test_shipped_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "init"


async def test_a_failure_mid_transaction_stores_nothing(path: Path, raw: Any) -> None:
    async with SqliteConversationStore(path) as store:
        # The user, the conversation and the greeting are written before the user message,
        # which this trigger then rejects.
        raw.execute(
            "CREATE TRIGGER reject AFTER INSERT ON messages WHEN NEW.content = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'rejected'); END"
        )
        with pytest.raises(StorageError, match="store the user message") as caught:
            await store.open_turn(
                external_user_id="u1", character_id="alice", text="boom", greeting="hello"
            )
        assert isinstance(caught.value.__cause__, sqlean.Error)

        assert [count(raw, t) for t in ("users", "conversations", "messages")] == [0, 0, 0]
        # The connection is usable afterwards: no transaction was left open.
        opened = await store.open_turn(external_user_id="u1", character_id="alice", text="ok")
        assert opened.message.seq == 1


async def test_two_stores_on_one_file_never_share_a_seq(path: Path) -> None:
    async with SqliteConversationStore(path) as one, SqliteConversationStore(path) as two:
        opened = await one.open_turn(external_user_id="u1", character_id="alice", text="hi")
        conversation_id = opened.conversation.id

        stored = await asyncio.gather(
            *(
                store.append_message(conversation_id, NewMessage(Role.ASSISTANT, str(i)))
                for i in range(15)
                for store in (one, two)
            )
        )

        assert sorted(m.seq for m in stored) == list(range(2, 32))
        conversation = await two.get_conversation(conversation_id)
        assert conversation is not None
        assert conversation.last_seq == 31


async def test_equal_activity_prefers_the_newer_conversation(path: Path, raw: Any) -> None:
    async with SqliteConversationStore(path) as store:
        opened = await store.open_turn(external_user_id="u1", character_id="alice", text="hi")
        updated = raw.execute(
            "SELECT updated_at FROM conversations WHERE id = ?", (opened.conversation.id,)
        ).fetchone()[0]
        raw.execute(
            "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at)"
            " VALUES ('conv_twin', ?, 'alice', ?, ?)",
            (opened.user.id, updated, updated),
        )

        raw.execute(
            "INSERT INTO conversations (id, user_id, character_id, created_at, updated_at)"
            " VALUES ('conv_other', ?, 'bob', ?, ?)",
            (opened.user.id, updated, updated),
        )

        listed = await store.list_conversations(opened.user.id)
        assert [c.id for c in listed] == ["conv_other", "conv_twin", opened.conversation.id]
        again = await store.open_turn(external_user_id="u1", character_id="alice", text="x")
        assert again.conversation.id == "conv_twin"


async def test_time_moves_forward_even_when_the_clock_does_not(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2030, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(conversations, "now", lambda: frozen)
    async with SqliteConversationStore(path) as store:
        opened = await store.open_turn(
            external_user_id="u1", character_id="alice", text="hi", greeting="hey"
        )
        for _ in range(3):
            await store.append_message(opened.conversation.id, NewMessage(Role.ASSISTANT, "a"))
        before = await store.get_conversation(opened.conversation.id)

        monkeypatch.setattr(conversations, "now", lambda: frozen - timedelta(days=1))
        doomed = await store.open_turn(external_user_id="u1", character_id="alice", text="x")
        await store.discard_turn(doomed)
        after = await store.get_conversation(opened.conversation.id)
        messages = await store.list_messages(opened.conversation.id)

    times = [m.created_at for m in messages]
    assert times == sorted(set(times))  # strictly increasing
    assert doomed.message.created_at > times[-1]
    assert before is not None
    assert before.updated_at == times[-1]
    assert after == before


async def test_the_file_passes_integrity_checks_after_use(path: Path, raw: Any) -> None:
    async with SqliteConversationStore(path) as store:
        for user in ("u1", "u2"):
            opened = await store.open_turn(
                external_user_id=user, character_id="alice", text="hi", greeting="hey"
            )
            await store.append_message(opened.conversation.id, NewMessage(Role.ASSISTANT, "a"))
            doomed = await store.open_turn(external_user_id=user, character_id="bob", text="x")
            await store.discard_turn(doomed)

    assert rows(raw, "PRAGMA integrity_check") == [("ok",)]
    assert rows(raw, "PRAGMA foreign_key_check") == []
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_open_twice_is_refused_and_close_twice_is_harmless(path: Path) -> None:
    store = SqliteConversationStore(path)
    await store.open()
    with pytest.raises(StorageError, match="already open"):
        await store.open()
    await store.close()
    await store.close()
    async with store:  # and it can be opened again
        assert await store.get_user("u1") is None


def test_connect_refuses_a_database_without_wal() -> None:
    # An in-memory database cannot use WAL; a file the store cannot make durable is refused.
    with pytest.raises(StorageError, match="WAL"):
        connect(Path(":memory:"))


def test_message_columns_are_in_the_order_of_the_message_fields() -> None:
    # rows.message_of reads a row by position: the SELECT and the dataclass must agree.
    selected = MESSAGE_COLUMNS.removeprefix("SELECT ").split(" FROM ")[0]
    columns = [name.strip() for name in selected.split(",")]
    assert columns == [f.name for f in dataclasses.fields(Message)]


async def test_every_message_field_reads_back_as_written(path: Path, raw: Any) -> None:
    async with SqliteConversationStore(path) as store:
        opened = await store.open_turn(external_user_id="ann", character_id="mira", text="hi")
        stored = await store.append_message(
            opened.conversation.id,
            NewMessage(
                role=Role.ASSISTANT,
                content="hello",
                status=MessageStatus.INCOMPLETE,
                model="m",
                prompt_tokens=3,
                completion_tokens=1,
                latency_ms=2.5,
                character_version="abc",
                speaker="mira",
            ),
        )
        edited = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        raw.execute(
            "UPDATE messages SET edited_at = ? WHERE id = ?", (edited.isoformat(), stored.id)
        )
        (read,) = [
            m
            for m in await store.recent_messages(opened.conversation.id, limit=5)
            if m.id == stored.id
        ]
    assert read == dataclasses.replace(stored, edited_at=edited)
    assert read.role is Role.ASSISTANT
    assert read.status is MessageStatus.INCOMPLETE
    assert read.hidden is False
