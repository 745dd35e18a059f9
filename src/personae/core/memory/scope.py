"""Whose memory a request reaches: a user's private partitions, found through the
conversation store (the partition names the store's user id, the request the external one)."""

from __future__ import annotations

from personae.core.memory.items import Partition
from personae.core.ports import ConversationStore

MAX_CHARACTERS = 10_000  # conversations read to find the characters a user talked to


async def private_partitions(
    store: ConversationStore, external_user_id: str, character: str | None = None
) -> list[Partition]:
    """The user's partition with ``character``, or with every character it has a conversation
    with; none for a user the store does not know."""
    user = await store.get_user(external_user_id)
    if user is None:
        return []
    if character is not None:
        return [Partition.private(user.id, character)]
    conversations = await store.list_conversations(user.id, limit=MAX_CHARACTERS)
    return [Partition.private(user.id, c) for c in sorted({c.character_id for c in conversations})]


async def shared_partitions(
    store: ConversationStore, user_id: str, character_id: str
) -> list[Partition]:
    """For a character that may see across characters (``memory.cross_character``): the
    user's partition with it first, then the user's partitions with every other character it
    talked to. ``user_id`` is the store's id; nothing of another user is ever included."""
    conversations = await store.list_conversations(user_id, limit=MAX_CHARACTERS)
    others = sorted({c.character_id for c in conversations} - {character_id})
    return [Partition.private(user_id, c) for c in [character_id, *others]]
