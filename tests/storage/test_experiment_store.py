"""``SqliteExperimentStore`` on a real file shared with the conversation store: definitions
(create, conflict, save, delete), a YAML file's experiment replaced only when the file
changed, turn rows joined with feedback, and feedback's rules (the reply's own user, once per
(message, user)), and erasure taking a user's rows along."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from personae.core.experiments.spec import parse_experiment
from personae.core.experiments.store import TurnRow
from personae.core.overrides import ExperimentTag
from personae.core.types import NewMessage, Role
from personae.errors import Conflict, NotFound, PermissionDenied
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.experiments import SqliteExperimentStore
from personae.storage.sqlite.user_data import SqliteUserData

Stores = tuple[SqliteExperimentStore, SqliteConversationStore, SqliteUserData]


def spec(percent: float = 10) -> dict[str, object]:
    return {"id": "tone", "variants": [{"name": "brief", "percent": percent}]}


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    async with (
        SqliteDatabase(tmp_path / "db.sqlite3") as database,
        SqliteExperimentStore(database) as experiments,
        SqliteConversationStore(database) as conversations,
        SqliteUserData(database) as users,
    ):
        yield experiments, conversations, users


async def test_definitions(stores: Stores) -> None:
    store, _, _ = stores
    created = await store.create(parse_experiment(spec()))
    assert created.source == "api"
    with pytest.raises(Conflict):
        await store.create(parse_experiment(spec()))
    saved = await store.save(parse_experiment(spec(25)))
    assert saved.experiment.variants[0].percent == 25
    assert saved.created_at == created.created_at
    assert [s.experiment.id for s in await store.all()] == ["tone"]
    with pytest.raises(NotFound):
        await store.save(parse_experiment({**spec(), "id": "other"}))
    assert await store.delete("tone")
    assert not await store.delete("tone")
    assert await store.get("tone") is None


async def test_a_file_replaces_the_stored_one_only_when_it_changed(stores: Stores) -> None:
    store, _, _ = stores
    first = await store.sync_file(parse_experiment(spec(10)), "tone.yaml", "hash-1")
    assert first.source == "tone.yaml"
    await store.save(parse_experiment(spec(40)))  # ramped over the API
    again = await store.sync_file(parse_experiment(spec(10)), "tone.yaml", "hash-1")
    assert again.experiment.variants[0].percent == 40
    changed = await store.sync_file(parse_experiment(spec(5)), "tone.yaml", "hash-2")
    assert changed.experiment.variants[0].percent == 5


async def test_turns_feedback_and_its_rules(stores: Stores) -> None:
    store, conversations, users = stores
    opened = await conversations.open_turn(external_user_id="ann", character_id="aria", text="hi")
    reply = await conversations.append_message(
        opened.conversation.id, NewMessage(Role.ASSISTANT, "hello")
    )
    tag = ExperimentTag("tone", "brief")
    at = datetime.now(UTC)
    await store.record_turns(
        [
            TurnRow(tag, "ann", opened.conversation.id, reply.id, "ok", 12.5, 30, at),
            TurnRow(ExperimentTag("tone", "control"), "bob", None, None, "failed", 3.0, 0, at),
        ]
    )
    assert await store.give_feedback(reply.id, "ann", 1) == tag
    assert await store.give_feedback(reply.id, "ann", 1) == tag  # once per (message, user)
    with pytest.raises(PermissionDenied):
        await store.give_feedback(reply.id, "bob", -1)
    with pytest.raises(NotFound):
        await store.give_feedback(opened.message.id, "ann", 1)  # the user's own message
    with pytest.raises(NotFound):
        await store.give_feedback("msg_nope", "ann", 1)
    with pytest.raises(ValueError, match="feedback is"):
        await store.give_feedback(reply.id, "ann", 0)

    records = {r.user: r for r in await store.turn_records("tone")}
    assert (records["ann"].feedback, records["ann"].latency_ms, records["ann"].tokens) == (
        1,
        12.5,
        30,
    )
    assert (records["bob"].feedback, records["bob"].error) == (None, True)
    await store.give_feedback(reply.id, "ann", -1)
    assert {r.user: r.feedback for r in await store.turn_records("tone")}["ann"] == -1

    await users.erase_user("ann")  # erasure takes the turn rows and the feedback along
    assert [r.user for r in await store.turn_records("tone")] == ["bob"]
