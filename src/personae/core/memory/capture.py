"""What a stored message leaves in long-term memory: the message itself (chunked when long)
and, for a user's message, the facts the rule-based extractor finds in it.

The conversation store calls ``memories_of`` inside the transaction that stores the message,
so a message and its memory items exist together or not at all. Items are written pending;
the embedding job gives them vectors later (docs/memory.md).
"""

from __future__ import annotations

from personae.core.memory.chunking import chunk_words
from personae.core.memory.extract import Fact, extract_facts
from personae.core.memory.items import NewMemory, Partition
from personae.core.types import Conversation, Message, MessageStatus, Role

MESSAGE_KIND = "message"  # what the user said
REPLY_KIND = "reply"  # what the character answered
#: Fact items are ``fact:<what>`` (``fact:name``, ``fact:relationship:sister``), so the
#: profile can keep the newest value of each without parsing the sentence.
FACT_PREFIX = "fact:"

MESSAGE_IMPORTANCE = 0.5
REPLY_IMPORTANCE = 0.3  # the user's own words matter more than the character's


def fact_kind(fact: Fact) -> str:
    """The item kind of ``fact``: what it is about, the relation included."""
    about = f"{fact.kind}:{fact.subject}" if fact.subject else str(fact.kind)
    return FACT_PREFIX + about


def is_fact(kind: str) -> bool:
    return kind.startswith(FACT_PREFIX)


def memories_of(message: Message, conversation: Conversation) -> list[NewMemory]:
    """The items to store with ``message``: none for a blank text, a system message or a
    reply that did not complete (a fragment the model never finished is not a memory)."""
    if message.role is Role.USER:
        kind, importance = MESSAGE_KIND, MESSAGE_IMPORTANCE
    elif message.role is Role.ASSISTANT and message.status is MessageStatus.COMPLETE:
        kind, importance = REPLY_KIND, REPLY_IMPORTANCE
    else:
        return []
    partition = Partition.private(conversation.user_id, conversation.character_id)
    sources = (message.id,)

    def item(text: str, kind: str, importance: float) -> NewMemory:
        return NewMemory(partition, text, message.created_at, kind, importance, sources)

    # Long texts become overlapping chunks, each findable on its own; nothing is cut off.
    items = [item(chunk.text, kind, importance) for chunk in chunk_words(message.content)]
    if message.role is Role.USER and items:
        items += [item(f.text, fact_kind(f), f.importance) for f in extract_facts(message.content)]
    return items
