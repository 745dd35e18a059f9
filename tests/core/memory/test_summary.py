"""The rolling summary and the structured-answer pattern under it, with a scripted model: a
valid answer is used, a malformed one is asked again once and then skipped, never stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import structlog
from pydantic import ValidationError

from personae.core.characters import Character
from personae.core.memory.structured import Malformed
from personae.core.memory.summary import (
    CUT_MARK,
    SUMMARY_HEADING,
    Summariser,
    SummaryAnswer,
    with_summary,
)
from personae.core.prompt import AssembledPrompt, PromptBudget, assemble_prompt
from personae.core.types import ChatMessage, Message, MessageStatus, Role
from personae.testing import FakeChatModel

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def message(seq: int, text: str, role: Role = Role.USER, **kw: object) -> Message:
    return Message(f"m{seq}", "c1", seq, role, text, NOW, **kw)  # type: ignore[arg-type]


def answer(summary: str) -> str:
    return json.dumps({"summary": summary})


def summariser(model: FakeChatModel, **kw: int) -> Summariser:
    return Summariser(model, summary_tokens=kw.pop("summary_tokens", 60), **kw)


async def test_a_valid_answer_becomes_the_summary_and_covers_the_batch() -> None:
    model = FakeChatModel()
    model.enqueue(answer("Sam keeps bees in Porto."))
    update = await summariser(model).update(
        "Sam said hello.",
        [message(4, "I keep bees in Porto."), message(5, "How lovely!", Role.ASSISTANT)],
    )
    assert update is not None
    assert update.text == "Sam keeps bees in Porto."
    assert update.through_seq == 5
    (request,) = model.requests
    sent = "\n".join(m.content for m in request.messages)
    assert "Sam said hello." in sent  # the summary so far is rewritten, not replaced blindly
    assert "User: I keep bees in Porto." in sent
    assert "Character: How lovely!" in sent
    assert '"summary"' in request.messages[-1].content  # the JSON schema is in the request
    assert request.params.temperature == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        "Sam keeps bees.",  # not JSON at all
        '{"summary": "Sam keeps bees."',  # cut off
        '{"summary": 42}',  # wrong type
        '{"summary": "   "}',  # blank
        '{"summary": "Sam keeps bees.", "mood": "happy"}',  # a key the shape does not name
        '{"text": "Sam keeps bees."}',  # the wrong key
        "[]",
    ],
)
async def test_a_malformed_answer_is_retried_once_with_the_reason(bad: str) -> None:
    model = FakeChatModel()
    model.enqueue(bad)
    model.enqueue(answer("Sam keeps bees."))
    with structlog.testing.capture_logs() as logs:
        update = await summariser(model).update("", [message(1, "I keep bees.")])
    assert update is not None
    assert update.text == "Sam keeps bees."
    assert len(model.requests) == 2
    retry = model.requests[1].messages
    assert retry[-2] == ChatMessage(Role.ASSISTANT, bad)  # it sees its own answer
    assert retry[-1].content.startswith("That answer was invalid (")
    assert [e["attempt"] for e in logs if "malformed" in e["event"]] == [1]


async def test_malformed_twice_is_skipped_with_a_warning_and_nothing_raw() -> None:
    model = FakeChatModel()
    model.enqueue("Sure! Here is the summary: Sam keeps bees.")
    model.enqueue('{"summary": ["Sam", "bees"]}')
    model.enqueue(answer("never asked for"))
    with structlog.testing.capture_logs() as logs:
        update = await summariser(model).update("Before.", [message(7, "I keep bees.")])
    assert update is not None
    assert update.text is None  # skipped: the caller keeps the old summary
    assert update.through_seq == 7
    assert model.pending == 1  # two attempts, no third
    assert any(e["event"] == "memory: structured answer skipped after retries" for e in logs)


async def test_an_answer_over_the_token_budget_is_refused() -> None:
    model = FakeChatModel()
    budget = 20  # FakeChatModel counts words; the heading takes its share
    room = budget - len(SUMMARY_HEADING.split())
    model.enqueue(answer(" ".join(["word"] * (room + 1))))
    model.enqueue(answer(" ".join(["word"] * room)))
    update = await summariser(model, summary_tokens=budget).update("", [message(1, "Hi.")])
    assert update is not None
    assert update.text == " ".join(["word"] * room)
    assert "tokens; at most" in model.requests[1].messages[-1].content


async def test_a_fenced_json_answer_is_read() -> None:
    model = FakeChatModel()
    model.enqueue(f"```json\n{answer('Sam keeps bees.')}\n```")
    update = await summariser(model).update("", [message(1, "I keep bees.")])
    assert update is not None
    assert update.text == "Sam keeps bees."


async def test_fragments_and_system_messages_are_not_sent_but_are_covered() -> None:
    model = FakeChatModel()
    update = await summariser(model).update(
        "Old.",
        [
            message(3, "half a repl", Role.ASSISTANT, status=MessageStatus.CANCELLED),
            message(4, "note", Role.SYSTEM),
        ],
    )
    assert update is not None
    assert (update.text, update.through_seq) == ("Old.", 4)  # nothing to tell: no model call
    assert model.requests == []
    assert await summariser(model).update("Old.", []) is None


async def test_a_batch_stops_at_its_input_budget_and_a_huge_message_is_cut_visibly() -> None:
    model = FakeChatModel(default_reply=answer("Summary."))
    messages = [message(seq, " ".join(["talk"] * 40)) for seq in range(1, 6)]
    update = await summariser(model, input_tokens=100).update("", messages)
    assert update is not None
    assert update.through_seq == 2
    huge = [message(9, " ".join(["long"] * 500))]
    update = await summariser(model, input_tokens=100).update("", huge)
    assert update is not None
    assert update.through_seq == 9
    sent = model.requests[-1].messages[1].content
    assert sent.rstrip().endswith(CUT_MARK.strip())
    assert sent.count("long") < 100


def test_the_schema_refuses_extra_keys_and_wrong_types() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SummaryAnswer.model_validate_json('{"summary": "ok", "x": 1}')
    with pytest.raises(ValidationError, match="Input should be a valid string"):
        SummaryAnswer.model_validate_json('{"summary": 1}')


def test_malformed_is_a_value_error_with_the_reason() -> None:
    assert issubclass(Malformed, ValueError)


def count(text: str) -> int:
    return len(text.split())


def prompt_of(*messages: ChatMessage, examples: int = 0) -> AssembledPrompt:
    return AssembledPrompt(
        messages=messages,
        tokens=sum(count(m.content) for m in messages),
        history_included=0,
        history_dropped=0,
        examples_included=examples,
    )


def test_the_summary_note_goes_after_the_persona_and_examples_before_history() -> None:
    system = ChatMessage(Role.SYSTEM, "You are Mira.")
    example = ChatMessage(Role.SYSTEM, "Example conversation: ...")
    history = ChatMessage(Role.USER, "Earlier words")
    user = ChatMessage(Role.USER, "Now")
    prompt = with_summary(
        prompt_of(system, example, history, user, examples=1), "Sam keeps bees.", 50, count
    )
    assert [m.content for m in prompt.messages] == [
        "You are Mira.",
        "Example conversation: ...",
        f"{SUMMARY_HEADING}\nSam keeps bees.",
        "Earlier words",
        "Now",
    ]
    assert prompt.tokens == sum(count(m.content) for m in prompt.messages)


def test_a_summary_over_the_note_budget_keeps_its_leading_sentences() -> None:
    system = ChatMessage(Role.SYSTEM, "You are Mira.")
    summary = "Sam keeps bees. Sam lives in Porto. Sam has a sister called Ana who sings."
    budget = len(SUMMARY_HEADING.split()) + 7
    prompt = with_summary(prompt_of(system), summary, budget, count)
    note = prompt.messages[1].content
    assert note == f"{SUMMARY_HEADING}\nSam keeps bees. Sam lives in Porto."
    assert with_summary(prompt_of(system), summary, 3, count).messages == (system,)


def test_the_assembler_says_what_fell_out_of_the_window() -> None:
    character = Character(id="mira", name="Mira", persona="Keeps a lighthouse.")
    history = [message(seq, f"message {seq} " + "word " * 10) for seq in range(5, 15)]

    def assembled(context_tokens: int, history: list[Message]) -> AssembledPrompt:
        return assemble_prompt(
            character,
            history=history,
            user_text="Now?",
            user_name="Sam",
            budget=PromptBudget(context_tokens=context_tokens, reply_tokens=10),
            count_tokens=count,
        )

    roomy = assembled(4096, history)
    assert (roomy.history_dropped, roomy.out_of_window_seq) == (0, 4)  # older were not read
    tight = assembled(100, history)
    kept = tight.history_included
    assert 0 < kept < len(history)
    assert tight.out_of_window_seq == history[-kept - 1].seq
    assert assembled(4096, []).out_of_window_seq == 0
