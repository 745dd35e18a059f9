"""The memory-capture hook on PostgreSQL: a message and its memory items share one
transaction (as on SQLite), and the memory store on the same database sees them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from personae.core.memory.capture import memories_of
from personae.core.memory.items import EmbeddingSpace, NewMemory, Partition
from personae.core.types import Conversation, Message, NewMessage, Role
from personae.errors import StorageError
from personae.storage.postgres import (
    PostgresConversationStore,
    PostgresDatabase,
    PostgresMemoryStore,
)
from tests.postgres_server import postgres_snapshot


async def test_a_message_and_its_items_are_stored_together_and_found(pg_url: str) -> None:
    database = PostgresDatabase(pg_url)
    async with (
        PostgresConversationStore(database, remember=memories_of) as store,
        PostgresMemoryStore(database, space=EmbeddingSpace("fake", 8)) as memory,
    ):
        opened = await store.open_turn(
            external_user_id="alice",
            character_id="mira",
            text="Hi! My name is Sam and I live in Lisbon.",
            greeting="Hello there.",
        )
        reply = await store.append_message(
            opened.conversation.id, NewMessage(Role.ASSISTANT, "I love lighthouses.")
        )
        partition = Partition.private(opened.user.id, "mira")
        items = await memory.list_items(partition)
        assert {item.kind for item in items} == {"message", "fact:name", "fact:location", "reply"}
        assert {i.source_message_ids for i in items} == {(opened.message.id,), (reply.id,)}
        # Pending for the embedding job, and found by full text meanwhile.
        assert {i.id for i in await memory.pending_embeddings()} == {i.id for i in items}
        facts = await memory.list_facts(partition)
        assert {f.text for f in facts} == {"The user's name is Sam.", "The user lives in Lisbon."}
        hits = await memory.search(
            [partition], text="Where is Lisbon?", now=opened.message.created_at
        )
        assert opened.message.id in {s for h in hits for s in h.item.source_message_ids}


def failing_after_first(message: Message, conversation: Conversation) -> Sequence[NewMemory]:
    """The real items, the second made invalid behind the validation, so the database's
    CHECK refuses it after the message and the first item were written."""
    items = memories_of(message, conversation)
    broken = dataclasses.replace(items[1])
    object.__setattr__(broken, "importance", 2.0)
    return [items[0], broken]


async def test_a_failing_memory_write_rolls_the_message_back(pg_url: str) -> None:
    async with PostgresConversationStore(pg_url, remember=failing_after_first) as store:
        before = await postgres_snapshot(pg_url)
        with pytest.raises(StorageError, match="could not store the user message"):
            await store.open_turn(
                external_user_id="alice", character_id="mira", text="My name is Sam."
            )
        assert await postgres_snapshot(pg_url) == before  # no user, no message, no item
        assert await store.get_user("alice") is None


async def test_a_discarded_turn_takes_its_memory_with_it(pg_url: str) -> None:
    async with PostgresConversationStore(pg_url, remember=memories_of) as store:
        await store.open_turn(external_user_id="a", character_id="mira", text="I like tea.")
        before = await postgres_snapshot(pg_url)
        second = await store.open_turn(
            external_user_id="a", character_id="mira", text="My name is Sam."
        )
        assert await postgres_snapshot(pg_url) != before
        await store.discard_turn(second)
        assert await postgres_snapshot(pg_url) == before


async def test_an_edit_replaces_the_memory_of_the_old_text(pg_url: str) -> None:
    database = PostgresDatabase(pg_url)
    async with (
        PostgresConversationStore(database, remember=memories_of) as store,
        PostgresMemoryStore(database) as memory,
    ):
        opened = await store.open_turn(
            external_user_id="a", character_id="mira", text="I live in Porto."
        )
        await store.reopen_turn(
            opened.conversation.id,
            external_user_id="a",
            character_id="mira",
            text="I live in Lisbon.",
        )
        items = await memory.list_items(Partition.private(opened.user.id, "mira"))
        assert items
        assert all("Porto" not in item.text for item in items)
        assert any("Lisbon" in item.text for item in items)
