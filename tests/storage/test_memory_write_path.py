"""The write path of memory: a message and its memory items share one transaction, so they
exist together or not at all, and a discarded turn takes its items with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest

from personae.core.memory.capture import memories_of
from personae.core.memory.items import MemoryItem, NewMemory, Partition
from personae.core.types import Conversation, Message, MessageStatus, NewMessage, Role
from personae.errors import StorageError
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.memory import SqliteMemoryStore
from tests.sqlite_snapshot import Snapshot, sqlite_snapshot


def rows(path: Path) -> Snapshot:
    """Every row but FTS5's own shadow tables: a delete leaves their segments laid out
    differently while ``memory_fts`` (compared) holds the same rows."""
    return {k: v for k, v in sqlite_snapshot(path).items() if not k.startswith("memory_fts_")}


async def items_of(path: Path, partition: Partition) -> list[MemoryItem]:
    async with SqliteMemoryStore(path) as memory:
        return await memory.list_items(partition, limit=1000)


async def test_a_user_message_is_stored_with_its_items_and_facts_pending(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path, remember=memories_of) as store:
        opened = await store.open_turn(
            external_user_id="alice",
            character_id="mira",
            text="Hi! My name is Sam and I live in Lisbon.",
            greeting="Hello there.",
        )
    items = await items_of(path, Partition.private(opened.user.id, "mira"))
    by_kind = {item.kind: item for item in items}
    assert set(by_kind) == {"message", "fact:name", "fact:location"}  # not the greeting
    assert by_kind["message"].text == "Hi! My name is Sam and I live in Lisbon."
    assert by_kind["fact:name"].text == "The user's name is Sam."
    assert by_kind["fact:name"].importance == pytest.approx(0.95)
    assert all(item.source_message_ids == (opened.message.id,) for item in items)
    assert all(item.embedding_space is None for item in items)  # pending: the job embeds


async def test_replies_are_remembered_and_fragments_are_not(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path, remember=memories_of) as store:
        opened = await store.open_turn(external_user_id="a", character_id="mira", text="hello")
        conversation = opened.conversation.id
        reply = await store.append_message(
            conversation, NewMessage(Role.ASSISTANT, "I love lighthouses.")
        )
        await store.append_message(
            conversation,
            NewMessage(Role.ASSISTANT, "I was say", status=MessageStatus.CANCELLED),
        )
    items = await items_of(path, Partition.private(opened.user.id, "mira"))
    replies = [item for item in items if item.kind == "reply"]
    # A character's "I love ..." is not a fact about the user.
    assert [(i.text, i.source_message_ids) for i in replies] == [
        ("I love lighthouses.", (reply.id,))
    ]
    assert {item.kind for item in items} == {"message", "reply"}


async def test_a_long_message_is_chunked_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    words = [f"word{i}" for i in range(400)]
    async with SqliteConversationStore(path, remember=memories_of) as store:
        opened = await store.open_turn(
            external_user_id="a", character_id="mira", text=" ".join(words)
        )
    items = await items_of(path, Partition.private(opened.user.id, "mira"))
    assert len(items) > 2
    covered = {word for item in items for word in item.text.split()}
    assert covered == set(words)


def failing_after_first(message: Message, conversation: Conversation) -> Sequence[NewMemory]:
    """The real items, the second one made invalid behind the validation, so SQLite's CHECK
    refuses it after the message and the first item were already written."""
    items = memories_of(message, conversation)
    broken = dataclasses.replace(items[1])
    object.__setattr__(broken, "importance", 2.0)
    return [items[0], broken]


async def test_a_failing_memory_write_rolls_the_message_back(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path, remember=failing_after_first) as store:
        await store.get_user("nobody")  # the schema exists
        before = sqlite_snapshot(path)
        with pytest.raises(StorageError):
            await store.open_turn(
                external_user_id="alice", character_id="mira", text="My name is Sam."
            )
        assert sqlite_snapshot(path) == before  # no user, no message, no item
        assert await store.get_user("alice") is None


async def test_a_discarded_turn_takes_its_memory_with_it(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path, remember=memories_of) as store:
        first = await store.open_turn(external_user_id="a", character_id="mira", text="I like tea.")
        before = rows(path)
        second = await store.open_turn(
            external_user_id="a", character_id="mira", text="My name is Sam."
        )
        assert len(await items_of(path, Partition.private(first.user.id, "mira"))) == 4
        await store.discard_turn(second)
        assert rows(path) == before


async def test_without_remember_nothing_goes_to_memory(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with SqliteConversationStore(path) as store:
        opened = await store.open_turn(external_user_id="a", character_id="m", text="I like tea.")
    assert await items_of(path, Partition.private(opened.user.id, "m")) == []
