"""ChatService end to end on the real SQLite store, with a scripted model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character, GenerationOverrides
from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import (
    GenerationParams,
    InboundMessage,
    MessageStatus,
    Role,
    SamplingOverrides,
)
from personae.errors import (
    BackendProtocolError,
    BackendUnavailable,
    CharacterNotFound,
    ContextOverflow,
    InvalidInput,
    PayloadTooLarge,
)
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel
from tests.sqlite_snapshot import sqlite_snapshot

ARIA = Character(
    id="aria",
    name="Aria",
    persona="{{char}} navigates the starship and calls {{user}} captain.",
    greetings=("Captain, {{user}}! Where to?",),
    generation=GenerationOverrides(temperature=0.5),
)


class Harness:
    def __init__(self, tmp_path: Path, *, context_window: int = 4096, max_chars: int = 500):
        self.db = tmp_path / "personae.sqlite3"
        self.model = FakeChatModel(context_window=context_window)
        self.store = SqliteConversationStore(self.db)
        self.service = ChatService(
            catalog=CharacterCatalog([ARIA, Character(id="kit", name="Kit")]),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(
                max_message_chars=max_chars,
                generation=GenerationParams(max_tokens=50, temperature=0.9),
                user_name="Sam",
            ),
        )

    async def run(self, text: str, **kwargs: object) -> list[TurnEvent]:
        inbound = InboundMessage(user="sam", character_id="aria", text=text, **kwargs)  # type: ignore[arg-type]
        async with aclosing(self.service.turn(inbound)) as events:
            return [event async for event in events]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    async with h.store:
        yield h


async def test_a_turn_acks_streams_and_stores_the_reply(harness: Harness) -> None:
    harness.model.enqueue("Set course for Vesta.")
    events = await harness.run("Where to?")

    ack, *deltas, done = events
    assert isinstance(ack, MessageAck)
    assert ack.message.seq == 2  # the greeting is seq 1
    assert [d.text for d in deltas if isinstance(d, MessageDelta)] == [
        "Set",
        " course",
        " for",
        " Vesta.",
    ]
    assert isinstance(done, MessageDone)
    assert done.message.content == "Set course for Vesta."
    assert done.message.seq == 3
    assert done.message.model == "fake"
    assert done.usage.completion_tokens == 4
    assert done.time_to_first_token_ms is not None
    stored = await harness.store.list_messages(ack.conversation.id)
    assert [(m.role, m.content) for m in stored] == [
        (Role.ASSISTANT, "Captain, Sam! Where to?"),
        (Role.USER, "Where to?"),
        (Role.ASSISTANT, "Set course for Vesta."),
    ]
    assert stored[2].latency_ms is not None
    assert stored[2].prompt_tokens == done.usage.prompt_tokens > 0


async def test_the_prompt_carries_persona_greeting_and_names(harness: Harness) -> None:
    await harness.run("Hello")
    request = harness.model.requests[0]
    assert request.assistant_name == "Aria"
    assert request.user_name == "Sam"
    assert "Aria navigates the starship and calls Sam captain." in request.messages[0].content
    assert [(m.role, m.content) for m in request.messages[1:]] == [
        (Role.ASSISTANT, "Captain, Sam! Where to?"),
        (Role.USER, "Hello"),
    ]


async def test_sampling_precedence_request_then_character_then_server(harness: Harness) -> None:
    await harness.run("one")
    await harness.run("two", sampling=SamplingOverrides(temperature=0.1, max_tokens=7))
    first, second = (r.params for r in harness.model.requests)
    assert (first.temperature, first.max_tokens) == (0.5, 50)  # character over server
    assert (second.temperature, second.max_tokens) == (0.1, 7)  # request over character


async def test_thirty_turns_keep_persona_and_newest_history_within_budget(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path, context_window=300)
    async with harness.store:
        for i in range(30):
            harness.model.enqueue(f"reply number {i} with a few more words in it")
            await harness.run(f"message number {i} from the captain")
        last = harness.model.requests[-1]

    prompt_tokens = sum(harness.model.count_tokens(m.content) + 4 for m in last.messages)
    assert prompt_tokens <= 300 - 50  # context minus the reply reserve
    assert "navigates the starship" in last.messages[0].content
    assert last.messages[-1].content == "message number 29 from the captain"
    history = [m.content for m in last.messages[1:-1]]
    assert history[-1] == "reply number 28 with a few more words in it"
    assert "message number 0 from the captain" not in history  # the oldest went first
    assert len(history) >= 6

    # A restart: a new store and service on the same file read the history back.
    restarted = Harness(tmp_path, context_window=300)
    async with restarted.store:
        events = await restarted.run("do you remember?")
        ack = events[0]
        assert isinstance(ack, MessageAck)
        assert ack.message.seq == 62  # greeting + 30 * 2 + this one
        replayed = [m.content for m in restarted.model.requests[0].messages[1:-1]]
        assert replayed[-2:] == [
            "message number 29 from the captain",
            "reply number 29 with a few more words in it",
        ]


@pytest.mark.parametrize(
    ("inbound", "error"),
    [
        (InboundMessage(user="sam", character_id="nobody", text="hi"), CharacterNotFound),
        (InboundMessage(user="sam", character_id="aria", text="  \n"), InvalidInput),
        (InboundMessage(user="sam", character_id="aria", text="x" * 501), PayloadTooLarge),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored(
    harness: Harness, inbound: InboundMessage, error: type[Exception]
) -> None:
    before = sqlite_snapshot(harness.db)
    with pytest.raises(error):
        async with aclosing(harness.service.turn(inbound)) as events:
            async for _ in events:
                pass
    assert sqlite_snapshot(harness.db) == before
    assert harness.model.requests == []


async def test_a_backend_that_fails_before_any_token_leaves_no_trace(harness: Harness) -> None:
    await harness.run("first")  # an existing conversation
    before = sqlite_snapshot(harness.db)
    harness.model.enqueue("never", error=BackendUnavailable("connection refused", backend="fake"))
    with pytest.raises(BackendUnavailable, match="backend 'fake'"):
        await harness.run("second")
    assert sqlite_snapshot(harness.db) == before


async def test_a_failed_first_turn_removes_the_new_user_and_conversation(
    harness: Harness,
) -> None:
    before = sqlite_snapshot(harness.db)
    harness.model.enqueue("never", error=BackendUnavailable("down", backend="fake"))
    with pytest.raises(BackendUnavailable):
        await harness.run("hello?")
    assert sqlite_snapshot(harness.db) == before


async def test_an_empty_reply_is_a_protocol_error_and_leaves_no_trace(harness: Harness) -> None:
    before = sqlite_snapshot(harness.db)
    harness.model.enqueue(["  ", "\n"])
    with pytest.raises(BackendProtocolError, match="empty reply"):
        await harness.run("hello?")
    assert sqlite_snapshot(harness.db) == before


async def test_a_stream_that_dies_midway_keeps_the_partial_reply_marked(
    harness: Harness,
) -> None:
    harness.model.enqueue(
        "Set course for", error=BackendUnavailable("reset", backend="fake"), error_after_tokens=2
    )
    with pytest.raises(BackendUnavailable):
        await harness.run("Where to?")
    conversation = (await harness.store.list_conversations((await _user(harness)).id))[0]
    last = (await harness.store.recent_messages(conversation.id, limit=1))[0]
    assert (last.role, last.content, last.status) == (
        Role.ASSISTANT,
        "Set course",
        MessageStatus.INCOMPLETE,
    )


async def test_a_consumer_that_stops_midway_keeps_the_partial_reply_cancelled(
    harness: Harness,
) -> None:
    harness.model.enqueue("one two three four five", delay_s=0.01)
    inbound = InboundMessage(user="sam", character_id="aria", text="count")
    async with aclosing(harness.service.turn(inbound)) as events:
        seen = 0
        async for event in events:
            seen += isinstance(event, MessageDelta)
            if seen == 2:
                break
    await harness.service.drain()
    conversation = (await harness.store.list_conversations((await _user(harness)).id))[0]
    last = (await harness.store.recent_messages(conversation.id, limit=1))[0]
    assert (last.content, last.status) == ("one two", MessageStatus.CANCELLED)


async def test_a_cancelled_task_keeps_what_arrived(harness: Harness) -> None:
    harness.model.enqueue("alpha beta gamma delta", delay_s=0.05)
    got_two = asyncio.Event()

    async def consume() -> None:
        inbound = InboundMessage(user="sam", character_id="aria", text="go")
        seen = 0
        async with aclosing(harness.service.turn(inbound)) as events:
            async for event in events:
                seen += isinstance(event, MessageDelta)
                if seen == 2:
                    got_two.set()

    task = asyncio.create_task(consume())
    await got_two.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await harness.service.drain()
    conversation = (await harness.store.list_conversations((await _user(harness)).id))[0]
    last = (await harness.store.recent_messages(conversation.id, limit=1))[0]
    assert last.status is MessageStatus.CANCELLED
    assert last.content.startswith("alpha beta")


async def test_a_message_too_long_for_the_context_leaves_no_trace(tmp_path: Path) -> None:
    harness = Harness(tmp_path, context_window=80)
    async with harness.store:
        before = sqlite_snapshot(harness.db)
        with pytest.raises(ContextOverflow):
            await harness.run(" ".join(["word"] * 60))
        assert sqlite_snapshot(harness.db) == before


async def test_concurrent_turns_of_one_conversation_run_one_at_a_time(harness: Harness) -> None:
    for i in range(4):
        harness.model.enqueue(f"reply {i}", delay_s=0.01)
    await asyncio.gather(*(harness.run(f"message {i}") for i in range(4)))
    conversation = (await harness.store.list_conversations((await _user(harness)).id))[0]
    roles = [m.role for m in await harness.store.list_messages(conversation.id)]
    assert roles == [Role.ASSISTANT] + [Role.USER, Role.ASSISTANT] * 4


async def test_new_conversation_and_explicit_conversation(harness: Harness) -> None:
    first = (await harness.run("one"))[0]
    second = (await harness.run("two", new_conversation=True))[0]
    assert isinstance(first, MessageAck)
    assert isinstance(second, MessageAck)
    assert first.conversation.id != second.conversation.id
    again = (await harness.run("three", conversation_id=first.conversation.id))[0]
    assert isinstance(again, MessageAck)
    assert again.conversation.id == first.conversation.id


async def _user(harness: Harness):  # type: ignore[no-untyped-def]
    user = await harness.store.get_user("sam")
    assert user is not None
    return user


async def test_lorebook_turn_decorators_count_every_user_turn_beyond_the_window(
    tmp_path: Path,
) -> None:
    every_third = {
        "name": "tides",
        "keys": [],
        "constant": True,
        "enabled": True,
        "insertion_order": 100,
        "extensions": {},
        "content": "@@activate_only_every 3\nThe tides turn now.",
    }
    tidal = Character(
        id="aria", name="Aria", character_book={"entries": [every_third], "extensions": {}}
    )
    h = Harness(tmp_path)
    h.service = ChatService(
        catalog=CharacterCatalog([tidal]),
        store=h.store,
        routes=ModelRoutes({"fake": h.model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(history_messages=2, user_name="Sam"),  # a window of two messages
    )
    async with h.store:
        for _ in range(7):
            await h.run("Any news?")
    fired = ["The tides turn now." in str(request.messages) for request in h.model.requests]
    assert fired == [False, False, True, False, False, True, False]
