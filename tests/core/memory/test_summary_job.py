"""The mid-term job at its moments, through ChatService on real SQLite stores: messages that
fell out of the window are summarised, the summary goes in after the persona, facts are
extracted every N turns and at session expiry; malformed answers and a failing backend never
store anything raw and never fail a turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from personae.core.memory.items import Partition
from personae.core.memory.midterm import MidTermSettings
from personae.core.memory.stage import NOTE_OVERHEAD_TOKENS
from personae.core.memory.summary import SUMMARY_HEADING, MidTermState
from personae.core.sessions import ConversationSession, SessionRegistry
from personae.errors import BackendUnavailable
from tests.memory.midterm_harness import (
    MidTermHarness,
    chat,
    facts_answer,
    profile_note,
    summary_answer,
    summary_note,
)

WINDOW = 3  # turns: six messages


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[MidTermHarness]:
    settings = MidTermSettings(summary_tokens=80, summary_min_messages=2, extract_every_turns=2)
    async with MidTermHarness(tmp_path / "p.db", window_turns=WINDOW, settings=settings) as h:
        yield h


async def test_messages_out_of_the_window_are_summarised_and_the_summary_is_in_the_prompt(
    harness: MidTermHarness,
) -> None:
    harness.summary_model.enqueue(summary_answer("Sam keeps bees on a Porto rooftop."))
    await harness.say("I keep bees on my rooftop in Porto.")  # seq 1, reply seq 2
    for turn in range(2, 5):
        await harness.say(f"Filler turn {turn}.")
    assert harness.summary_model.requests == []  # nothing has left the window yet
    await harness.say("Filler turn 5.")  # the window is seq 3..8: seq 1-2 fell out
    (request,) = harness.summary_model.requests
    assert "User: I keep bees on my rooftop in Porto." in request.messages[1].content
    assert "Filler turn 2." not in request.messages[1].content  # still in the window
    state = await harness.state()
    assert (state.summary, state.summarized_seq) == ("Sam keeps bees on a Porto rooftop.", 2)

    messages = await harness.say("What do I keep?")
    assert "I keep bees on my rooftop in Porto." not in chat(messages)
    assert messages[1].content == f"{SUMMARY_HEADING}\nSam keeps bees on a Porto rooftop."
    assert messages[0].content.startswith("You are Mira")  # the persona's block stays first
    # The next batch starts where the summary ends, with the summary so far.
    second = harness.summary_model.requests[1].messages[1].content
    assert "Sam keeps bees on a Porto rooftop." in second
    assert "Filler turn 2." in second
    assert "I keep bees" not in second


async def test_facts_are_extracted_every_n_turns_into_the_profile(
    harness: MidTermHarness,
) -> None:
    harness.facts_model.enqueue(
        facts_answer({"kind": "relationship", "relation": "dog", "value": "Biscuit"})
    )
    await harness.say("Biscuit, my old dog, chewed my shoes again.")  # no rule reads this
    assert harness.facts_model.requests == []  # turn 1 of every 2
    await harness.say("Anyway, how are you?")  # turn 2: extraction
    (request,) = harness.facts_model.requests
    assert "Biscuit, my old dog" in request.messages[1].content
    assert "Anyway, how are you?" in request.messages[1].content
    messages = await harness.say("Tell me a story.")
    assert "- The user's dog is Biscuit." in profile_note(messages)
    # Turn 4 reads only what came after the last extraction.
    await harness.say("Another one please.")
    later = harness.facts_model.requests[1].messages[1].content
    assert "Biscuit" not in later
    assert "Tell me a story." in later


async def test_session_expiry_catches_up_what_is_pending(tmp_path: Path) -> None:
    settings = MidTermSettings(summary_tokens=80, summary_min_messages=50, extract_every_turns=9)
    clock = [0.0]
    sessions = SessionRegistry(idle_expiry_s=60, clock=lambda: clock[0])
    async with MidTermHarness(tmp_path / "p.db", window_turns=2, settings=settings) as h:
        sessions.on_expire(h.job.session_expired)
        h.facts_model.enqueue(facts_answer({"kind": "location", "value": "Faro"}))
        h.summary_model.enqueue(summary_answer("Sam moved to Faro last spring."))
        await h.say("We moved to Faro last spring.")
        for turn in range(3):
            await h.say(f"Filler {turn}.")
        # Neither moment came during the session: too few turns, too little fell out.
        assert h.facts_model.requests == []
        assert h.summary_model.requests == []
        sessions.begin_turn(h.conversation_id, "sam")
        sessions.end_turn(h.conversation_id)
        clock[0] = 61
        await sessions.sweep()
        await h.settle()
        assert len(h.facts_model.requests) == 1
        state = await h.state()
        assert state.summary == "Sam moved to Faro last spring."
        assert state.summarized_seq == 2  # what the last prompt's window had left out
        assert state.extracted_seq == 8  # every message so far was read
        messages = await h.say("Where do I live now?")
    assert "- The user lives in Faro." in profile_note(messages)
    assert "Sam moved to Faro last spring." in summary_note(messages)


async def test_a_malformed_summary_is_skipped_and_never_stored(
    harness: MidTermHarness,
) -> None:
    harness.summary_model.enqueue(summary_answer("Sam keeps bees."))
    for turn in range(1, 6):
        await harness.say(f"Turn {turn}.")
    assert (await harness.state()).summary == "Sam keeps bees."
    harness.summary_model.enqueue("Here you go: Sam keeps bees and likes tea.")
    harness.summary_model.enqueue('{"summary": "Sam keeps bees.", "extra": true}')
    with structlog.testing.capture_logs() as logs:
        await harness.say("Turn 6.")
    state = await harness.state()
    assert state.summary == "Sam keeps bees."  # the old one stands
    assert state.summarized_seq == 4  # the batch is skipped, not retried forever
    assert "likes tea" not in str(state.as_json())
    assert any("left out of the summary" in e["event"] for e in logs)
    assert any("skipped after retries" in e["event"] for e in logs)


async def test_a_failing_backend_leaves_the_positions_for_the_next_moment(
    harness: MidTermHarness,
) -> None:
    down = BackendUnavailable("summariser down", backend="fake")
    harness.summary_model.enqueue("", error=down)
    for turn in range(1, 6):
        messages = await harness.say(f"Turn {turn}.")  # the turn itself is unaffected
    assert messages[-1].content == "Turn 5."
    assert (await harness.state()).summarized_seq == 0
    harness.summary_model.enqueue(summary_answer("They counted turns."))
    await harness.say("Turn 6.")
    state = await harness.state()
    assert state.summarized_seq == 4
    assert state.summary == "They counted turns."


async def test_the_summary_budget_is_kept_free_in_the_prompt(harness: MidTermHarness) -> None:
    memory = harness.service._memory  # what ChatService adds to the reply's reserve
    inner = memory._inner  # type: ignore[attr-defined]
    assert memory.reserved_tokens == inner.reserved_tokens + 80 + NOTE_OVERHEAD_TOKENS


async def test_a_fact_the_rules_already_stored_is_not_stored_again(
    harness: MidTermHarness,
) -> None:
    harness.facts_model.enqueue(
        facts_answer({"kind": "name", "value": "Sam Okafor"}, {"kind": "like", "value": "kites"})
    )
    await harness.say("My name is Sam Okafor.")  # the rule-based extractor stores the name
    await harness.say("Kites are my favourite thing.")  # turn 2: the LLM extractor runs
    user = await harness.conversations.get_user("sam")
    assert user is not None
    facts = await harness.memory.list_facts(Partition.private(user.id, "mira"), limit=50)
    assert sorted(f.text for f in facts) == [
        "The user likes kites.",
        "The user's name is Sam Okafor.",
    ]


async def test_every_n_turns_the_summary_catches_up_with_what_fell_out(tmp_path: Path) -> None:
    settings = MidTermSettings(summary_tokens=80, summary_min_messages=50, extract_every_turns=4)
    async with MidTermHarness(tmp_path / "p.db", window_turns=2, settings=settings) as h:
        for turn in range(1, 4):
            await h.say(f"Turn {turn}.")
        assert h.summary_model.requests == []  # 2 messages out, fewer than 50
        await h.say("Turn 4.")  # the fourth turn: a moment for both
        assert len(h.summary_model.requests) == 1
        assert (await h.state()).summarized_seq == 2


async def test_a_group_conversation_is_left_alone(harness: MidTermHarness) -> None:
    group = await harness.conversations.create_group(
        owner="sam", characters=["mira", "oren"], participants=["alice"]
    )
    await harness.conversations.open_turn(
        external_user_id="alice",
        character_id="mira",
        text="My name is Alice and I live in Braga.",
        conversation_id=group.id,
        speaker="alice",
        group=True,
    )
    await harness.job.session_expired(ConversationSession(group.id, "sam"))
    await harness.settle()
    assert harness.facts_model.requests == []  # Alice's words never become Sam's facts
    assert await harness.state(group.id) == MidTermState()
