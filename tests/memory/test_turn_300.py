"""Acceptance #5.4: a fact stated in turn 3 is in the prompt at turn 300, with the window at
ten turns, through the profile (the LLM extractor's fact) and the rolling summary, written by
the mid-term job at its moments. What the model was sent is what these tests read."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path

from personae.core.memory.midterm import MidTermSettings
from personae.core.memory.summary import SUMMARY_HEADING
from personae.core.types import ChatRequest, ModelChunk
from personae.testing import FakeChatModel
from tests.memory.midterm_harness import (
    MidTermHarness,
    chat,
    facts_answer,
    profile_note,
    summary_answer,
    summary_note,
)

WINDOW_TURNS = 10
FACT = "I keep three beehives on the roof, and I promised my niece Lua a jar of honey."
FILLER = [
    "How was your morning?",
    "Tell me a story about ships.",
    "What do you think of rainy weather?",
    "Any plans for the weekend?",
    "That sounds nice.",
    "Really? Go on.",
]


class CarryingSummariser(FakeChatModel):
    """A scripted summariser that behaves like one: it keeps the summary so far and adds a
    sentence for the beehives when they appear in the new messages."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        asked = request.messages[1].content
        so_far = re.search(r"Summary so far:\n(.*?)\n\nNew messages:", asked, re.DOTALL)
        summary = "" if so_far is None or so_far[1] == "(none yet)" else so_far[1]
        if "beehives" in asked.split("New messages:")[1]:
            summary += " Sam keeps three beehives on the roof."
        self.enqueue(summary_answer(summary.strip() or "Small talk."))
        async for chunk in super().stream(request):
            yield chunk


async def test_a_fact_from_turn_3_is_in_the_prompt_at_turn_300(tmp_path: Path) -> None:
    settings = MidTermSettings(summary_tokens=120, summary_min_messages=6, extract_every_turns=5)
    async with MidTermHarness(
        tmp_path / "p.db",
        window_turns=WINDOW_TURNS,
        settings=settings,
        summary_model=CarryingSummariser(),
    ) as h:
        h.facts_model.enqueue(
            facts_answer(
                {"kind": "promise", "value": "Sam promised his niece Lua a jar of honey"},
                {"kind": "relationship", "relation": "niece", "value": "Lua"},
            )
        )
        await h.say("Hello there.")
        await h.say("My name is Sam Okafor.")
        await h.say(FACT)  # turn 3
        for turn in range(4, 300):
            await h.say(FILLER[turn % len(FILLER)])
        messages = await h.say("What did I promise Lua?")  # turn 300
        state = await h.state()

    assert FACT not in chat(messages)  # long out of the window
    assert len(chat(messages)) <= 2 * WINDOW_TURNS + 1
    profile = profile_note(messages)
    assert "- Promise: Sam promised his niece Lua a jar of honey." in profile  # LLM extractor
    assert "- The user's niece is Lua." in profile
    assert "- The user's name is Sam Okafor." in profile  # the rule-based extractor, beside it
    summary = summary_note(messages)
    assert summary == f"{SUMMARY_HEADING}\nSam keeps three beehives on the roof."
    assert messages.index(next(m for m in messages if m.content == summary)) == 1
    # Written in code at its moments: a summary once six messages are out of the window or
    # at every fifth turn, an extraction every fifth turn; never one per turn.
    assert state.summarized_seq >= 2 * (299 - WINDOW_TURNS) - 6
    assert 300 // 3 <= len(h.summary_model.requests) <= 300 // 2
    assert len(h.facts_model.requests) == 300 // 5
