"""Turn records on SQLite: kept and read back whole, by turn and by conversation; purged by
age; gone with their reply when messages are purged or the user is erased; a record whose
reply does not exist is not kept; a broken stored record is a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlean

from personae.core.overrides import ExperimentTag, Overrides
from personae.core.route_log import Attempt, RouteTaken
from personae.core.turn_record import SkillTaken, StageTime, TurnRecord
from personae.core.types import (
    ChatMessage,
    GenerationParams,
    NewMessage,
    Role,
    SamplingOverrides,
    Usage,
)
from personae.errors import InvalidInput
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.retention import SqliteMessageRetention
from personae.storage.sqlite.turn_records import SqliteTurnRecords
from personae.storage.sqlite.user_data import SqliteUserData

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

Rig = tuple[SqliteDatabase, SqliteConversationStore, SqliteTurnRecords]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    database = SqliteDatabase(tmp_path / "db.sqlite3")
    store, records = SqliteConversationStore(database), SqliteTurnRecords(database)
    async with store, records:
        yield database, store, records


async def a_reply(store: SqliteConversationStore, user: str = "sam") -> tuple[str, str, str]:
    opened = await store.open_turn(external_user_id=user, character_id="vera", text="hi")
    reply = await store.append_message(
        opened.conversation.id, NewMessage(role=Role.ASSISTANT, content="hello")
    )
    return reply.id, opened.conversation.id, opened.message.id


def a_record(turn_id: str, conversation_id: str, user_message_id: str) -> TurnRecord:
    return TurnRecord(
        turn_id=turn_id,
        conversation_id=conversation_id,
        user_message_id=user_message_id,
        user="sam",
        character_id="vera",
        character_version="abc123",
        created_at=T0,
        model="primary>backup",
        prompt=(ChatMessage(Role.SYSTEM, "You are Vera."), ChatMessage(Role.USER, "hi", "Sam")),
        prompt_tokens=5,
        lore=("harbour",),
        lore_dropped=1,
        memory_note="What the user has told you about themselves:\n- likes tea",
        knowledge=("guide.pdf#3",),
        skill=SkillTaken("dice", ok=True, answered=False, note="[skill dice result: 7]"),
        experiment=ExperimentTag("exp", "b"),
        overrides=Overrides(route=("backup",), generation=SamplingOverrides(temperature=0.2)),
        params=GenerationParams(max_tokens=50, temperature=0.2, stop=("Sam:",), seed=3),
        routes=(
            RouteTaken(("primary", "backup"), "backup", 2, (Attempt("primary", "timed out"),)),
        ),
        stages=(StageTime("open", 1.5), StageTime("generate", 20.25)),
        total_ms=25.0,
        usage=Usage(5, 2),
        latency_ms=20.0,
        first_token_ms=3.0,
    )


async def test_a_record_reads_back_whole(rig: Rig) -> None:
    _, store, records = rig
    turn_id, conversation_id, user_message_id = await a_reply(store)
    record = a_record(turn_id, conversation_id, user_message_id)
    assert await records.add([record]) == 1
    assert await records.get(turn_id) == record
    assert await records.for_conversation(conversation_id) == [record]
    assert await records.get("msg_nope") is None


async def test_a_record_without_its_reply_is_not_kept(rig: Rig) -> None:
    _, store, records = rig
    turn_id, conversation_id, user_message_id = await a_reply(store)
    kept = await records.add(
        [
            a_record("msg_gone", conversation_id, user_message_id),
            a_record(turn_id, conversation_id, user_message_id),
        ]
    )
    assert kept == 1
    assert [r.turn_id for r in await records.for_conversation(conversation_id)] == [turn_id]


async def test_purge_by_age(rig: Rig) -> None:
    _, store, records = rig
    old = a_record(*await a_reply(store))
    new = replace(a_record(*await a_reply(store)), created_at=T0 + timedelta(days=10))
    await records.add([old, new])
    assert await records.purge_before(T0 + timedelta(days=1)) == 1
    assert await records.get(old.turn_id) is None
    assert await records.get(new.turn_id) == new
    with pytest.raises(InvalidInput, match="timezone"):
        await records.purge_before(datetime(2026, 1, 1))


async def test_records_go_with_their_messages_and_their_user(rig: Rig) -> None:
    database, store, records = rig
    sams = a_record(*await a_reply(store, "sam"))
    kims = a_record(*await a_reply(store, "kim"))
    await records.add([sams, kims])
    async with SqliteUserData(database) as users:
        await users.erase_user("sam")
    assert await records.get(sams.turn_id) is None
    assert await records.get(kims.turn_id) == kims
    async with SqliteMessageRetention(database) as retention:
        await retention.purge_before(datetime.now(UTC) + timedelta(days=1))
    assert await records.get(kims.turn_id) is None


async def test_a_broken_stored_record_is_a_clear_error(rig: Rig, tmp_path: Path) -> None:
    _, store, records = rig
    turn_id, conversation_id, user_message_id = await a_reply(store)
    await records.add([a_record(turn_id, conversation_id, user_message_id)])
    conn = sqlean.connect(str(tmp_path / "db.sqlite3"))
    with conn:
        conn.execute("UPDATE turn_records SET record = '{\"format\": 1}'")
    conn.close()
    with pytest.raises(InvalidInput, match="broken turn record"):
        await records.get(turn_id)
    conn = sqlean.connect(str(tmp_path / "db.sqlite3"))
    with conn:
        conn.execute("UPDATE turn_records SET record = 'not json'")
    conn.close()
    with pytest.raises(InvalidInput, match="not JSON"):
        await records.for_conversation(conversation_id)
