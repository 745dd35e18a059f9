from __future__ import annotations

from datetime import UTC, datetime

import pytest

from personae.core.memory.capture import fact_kind, is_fact, memories_of
from personae.core.memory.extract import extract_facts
from personae.core.memory.items import Partition
from personae.core.types import Conversation, Message, MessageStatus, Role

NOW = datetime(2025, 6, 1, tzinfo=UTC)
CONVERSATION = Conversation("conv-1", "usr-1", "mira", NOW, NOW)


def message(text: str, role: Role = Role.USER, **kwargs: object) -> Message:
    return Message("msg-1", "conv-1", 1, role, text, NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_blank_texts_leave_nothing(text: str) -> None:
    assert memories_of(message(text), CONVERSATION) == []


def test_a_user_message_gives_the_message_and_its_facts_in_the_private_partition() -> None:
    items = memories_of(message("My sister is Ana. I love jazz."), CONVERSATION)
    assert [(i.kind, i.text) for i in items] == [
        ("message", "My sister is Ana. I love jazz."),
        ("fact:relationship:sister", "The user's sister is Ana."),
        ("fact:like", "The user loves jazz."),
    ]
    assert {i.partition for i in items} == {Partition.private("usr-1", "mira")}
    assert {i.source_message_ids for i in items} == {("msg-1",)}
    assert all(i.embedding is None and i.created_at == NOW for i in items)


def test_only_complete_replies_count_and_never_as_facts() -> None:
    reply = memories_of(message("My name is Mira.", Role.ASSISTANT), CONVERSATION)
    assert [(i.kind, i.importance) for i in reply] == [("reply", 0.3)]
    cut = message("My name is", Role.ASSISTANT, status=MessageStatus.INCOMPLETE)
    assert memories_of(cut, CONVERSATION) == []
    assert memories_of(message("be kind", Role.SYSTEM), CONVERSATION) == []


def test_fact_kinds_name_what_the_fact_is_about() -> None:
    (name,) = extract_facts("My name is Sam.")
    assert fact_kind(name) == "fact:name"
    assert is_fact(fact_kind(name))
    assert not is_fact("message")
