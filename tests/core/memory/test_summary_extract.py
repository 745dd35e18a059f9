"""The LLM fact extractor with a scripted model: valid facts become fact items worded as the
rule-based extractor words them; an unknown kind, a value that is not a short string, or an
extra key makes the answer malformed: asked again once, then skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from personae.core.memory.capture import memories_of
from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.llm_extract import MAX_VALUE_CHARS, LlmFactExtractor
from personae.core.memory.profile import current_facts
from personae.core.types import Conversation, Message, Role
from personae.testing import FakeChatModel

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PARTITION = Partition.private("u1", "mira")


def message(seq: int, text: str, role: Role = Role.USER) -> Message:
    return Message(f"m{seq}", "c1", seq, role, text, NOW)


def facts(*items: dict[str, Any]) -> str:
    return json.dumps({"facts": list(items)})


async def test_facts_become_items_in_the_rule_based_wording() -> None:
    model = FakeChatModel()
    model.enqueue(
        facts(
            {"kind": "name", "value": "Sam"},
            {"kind": "relationship", "relation": "Sister", "value": "Ana"},
            {"kind": "like", "value": "green tea"},
            {"kind": "promise", "value": "Mira will tell Sam about the storm"},
            {"kind": "age", "value": "34"},
        )
    )
    said = [
        message(2, "Call me Sam. Ana, my sister, visits often."),
        message(3, "Nice!", Role.ASSISTANT),
        message(4, "Green tea is my favourite, and I turned 34."),
    ]
    items = await LlmFactExtractor(model).extract(PARTITION, said)
    assert items is not None
    assert [(i.kind, i.text) for i in items] == [
        ("fact:name", "The user's name is Sam."),
        ("fact:relationship:sister", "The user's sister is Ana."),
        ("fact:like", "The user likes green tea."),
        ("fact:promise", "Promise: Mira will tell Sam about the storm."),
        ("fact:age", "The user is 34 years old."),
    ]
    assert all(i.partition == PARTITION and i.source_message_ids == ("m2", "m4") for i in items)
    sent = model.requests[0].messages[1].content
    assert "Call me Sam." in sent
    assert "Nice!" not in sent
    # The rule-based extractor words a name the same way: the profile keeps one.
    ruled = memories_of(message(1, "My name is Sam."), Conversation("c1", "u1", "mira", NOW, NOW))
    stored = [
        MemoryItem(str(n), PARTITION, i.text, i.kind, i.importance, i.created_at)
        for n, i in enumerate([*items, *ruled])
        if i.kind.startswith("fact:")
    ]
    assert current_facts(stored).count("The user's name is Sam.") == 1


@pytest.mark.parametrize(
    "bad",
    [
        facts({"kind": "hobby", "value": "bees"}),  # an unknown kind
        facts({"kind": "name", "value": 7}),  # not a string
        facts({"kind": "name", "value": "x" * (MAX_VALUE_CHARS + 1)}),  # not short
        facts({"kind": "like", "value": "tea\nand also\ncoffee"}),  # not one line
        facts({"kind": "name", "value": "Sam", "confidence": 0.9}),  # an extra key
        json.dumps({"facts": [], "note": "none"}),  # an extra key at the top
        facts({"kind": "relationship", "value": "Ana"}),  # a relationship needs its relation
        facts({"kind": "like", "relation": "sister", "value": "tea"}),  # and only it has one
        facts({"kind": "age", "value": "old"}),  # an age is a number
        facts({"kind": "name", "value": "   "}),  # blank
        '{"facts": [{"kind": "name", "value": "Sam"}',  # malformed JSON
    ],
)
async def test_a_bad_answer_is_refused_whole_then_retried(bad: str) -> None:
    model = FakeChatModel()
    model.enqueue(bad)
    model.enqueue(facts({"kind": "location", "value": "Porto"}))
    items = await LlmFactExtractor(model).extract(PARTITION, [message(1, "I moved to Porto.")])
    assert items is not None
    assert [i.text for i in items] == ["The user lives in Porto."]
    assert len(model.requests) == 2


async def test_two_bad_answers_are_skipped() -> None:
    model = FakeChatModel()
    model.enqueue(facts({"kind": "hobby", "value": "bees"}))
    model.enqueue("no facts here, sorry")
    items = await LlmFactExtractor(model).extract(PARTITION, [message(1, "I keep bees.")])
    assert items is None
    assert len(model.requests) == 2


async def test_no_user_message_no_call_and_duplicates_are_kept_once() -> None:
    model = FakeChatModel()
    assert (
        await LlmFactExtractor(model).extract(PARTITION, [message(1, "Hi", Role.ASSISTANT)]) == []
    )
    assert model.requests == []
    model.enqueue(facts({"kind": "like", "value": "tea"}, {"kind": "like", "value": "Tea"}))
    items = await LlmFactExtractor(model).extract(PARTITION, [message(2, "I like tea.")])
    assert items is not None
    assert [i.text for i in items] == ["The user likes tea."]
