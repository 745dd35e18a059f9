"""The tool loop (stage 2 of intent detection): the model calls skills as tools, their results
go back to it, and it answers; with the real dice and time skills, the real SkillRunner and,
for whole turns, the real SQLite store. The model is the scripted FakeChatModel."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDelta, MessageDone, TurnEvent
from personae.core.lorebook.decorators import parse_decorators
from personae.core.pii import Redactor
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy
from personae.core.service import ChatService, TurnSettings
from personae.core.skill_stage import SkillStage
from personae.core.skills import Skill, SkillContext, SkillResult, SkillRunner
from personae.core.tool_calls import ToolCallAssembler, ToolCallError, without_tools
from personae.core.tool_loop import ToolLoop, parse_arguments
from personae.core.types import (
    ChatMessage,
    ChatRequest,
    InboundMessage,
    ModelChunk,
    Role,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from personae.errors import BackendProtocolError, BackendUnavailable
from personae.skills.clock import TimeSkill
from personae.skills.dice import DiceSkill
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel

NOON = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
CONTEXT = SkillContext("sam", "bram", "conversation-1", "roll for me")
HELLO = (ChatMessage(Role.USER, "Roll 2d6 for me, and what time is it in Paris?"),)


class Broken(Skill):
    name = "broken"
    description = "Always fails."

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        raise RuntimeError("the skill is broken")


def skills() -> dict[str, Skill]:
    found: list[Skill] = [DiceSkill(random.Random(7)), TimeSkill(lambda: NOON), Broken()]
    return {skill.name: skill for skill in found}


def rolls(count: int, sides: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, sides) for _ in range(count)]


def spec(name: str) -> ToolSpec:
    skill = skills()[name]
    return ToolSpec(skill.name, skill.description, skill.parameters)


def ask(*names: str) -> ChatRequest:
    return ChatRequest(messages=HELLO, tools=tuple(spec(name) for name in names))


class Loop:
    """A ToolLoop over the skills above with a tools-capable fake model; records skill calls."""

    def __init__(self, max_rounds: int = 3) -> None:
        self.model = FakeChatModel(supports_tools=True)
        self.called: list[tuple[str, bool]] = []
        self.loop = ToolLoop(
            skills(),
            SkillRunner(timeout_s=1.0),
            max_rounds=max_rounds,
            on_call=lambda skill, ok: self.called.append((skill, ok)),
        )

    async def run(self, request: ChatRequest) -> list[ModelChunk]:
        async with aclosing(self.loop.stream(self.model, request, CONTEXT)) as chunks:
            return [chunk async for chunk in chunks]

    def tool_results(self, request_index: int) -> list[dict[str, Any]]:
        messages = self.model.requests[request_index].messages
        return [json.loads(m.content) for m in messages if m.role is Role.TOOL]


def text_of(chunks: list[ModelChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)


# --- the round trip ---------------------------------------------------------------------------


async def test_a_tool_call_is_run_and_its_result_fed_back_for_the_answer() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", {"expression": "2d6"}), pieces=4)
    run.model.enqueue("You rolled well.")

    chunks = await run.run(ask("dice", "time"))

    assert text_of(chunks) == "You rolled well."
    assert chunks[-1].finish_reason == "stop"
    first, second = run.model.requests
    assert [t.name for t in first.tools] == ["dice", "time"]
    assert first.tool_choice == "auto"
    # The second request: the prompt, then the assistant's call, then the skill's result.
    assert second.messages[: len(HELLO)] == HELLO
    call_message, result_message = second.messages[len(HELLO) :]
    [call] = call_message.tool_calls
    assert (call_message.role, call.name, json.loads(call.arguments)) == (
        Role.ASSISTANT,
        "dice",
        {"expression": "2d6"},
    )
    assert (result_message.role, result_message.tool_call_id) == (Role.TOOL, call.id)
    expected = rolls(2, 6)
    result = json.loads(result_message.content)
    assert result["data"] == {
        "expression": "2d6",
        "rolls": expected,
        "modifier": 0,
        "total": sum(expected),
    }
    assert result["result"].endswith(f"= {sum(expected)}")
    assert run.called == [("dice", True)]


async def test_several_calls_in_one_round_run_and_answer_in_order() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(
        ("time", {"timezone": "Europe/Paris"}), ("dice", '{"expression": "d20"}')
    )
    run.model.enqueue("Done.")

    await run.run(ask("dice", "time"))

    calls = run.model.requests[1].messages[len(HELLO)].tool_calls
    assert [c.name for c in calls] == ["time", "dice"]
    timed, rolled = run.tool_results(1)
    assert timed["data"]["iso"] == "2026-03-14T13:00:00+01:00"
    assert rolled["data"]["total"] == rolls(1, 20)[0]
    assert sorted(run.called) == [("dice", True), ("time", True)]


async def test_text_before_a_call_reaches_the_user_and_the_answer_starts_a_paragraph() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}), text="Let me roll.")
    run.model.enqueue(" It is a 4.")

    chunks = await run.run(ask("dice"))

    assert text_of(chunks) == "Let me roll.\n\nIt is a 4."
    assert run.model.requests[1].messages[len(HELLO)].content == "Let me roll."


async def test_usage_adds_up_over_the_rounds() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))
    run.model.enqueue("Four.")

    chunks = await run.run(ask("dice"))

    words = [run.model.count_tokens(m.content) for r in run.model.requests for m in r.messages]
    assert chunks[-1].usage == Usage(prompt_tokens=sum(words), completion_tokens=1)


async def test_without_tools_the_model_is_streamed_as_it_is() -> None:
    run = Loop()
    run.model.enqueue("Plain words.")

    chunks = await run.run(ChatRequest(messages=HELLO))

    assert text_of(chunks) == "Plain words."
    assert len(run.model.requests) == 1


# --- what is offered --------------------------------------------------------------------------


def test_the_characters_skills_are_offered_to_a_model_that_can_call_tools() -> None:
    loop = ToolLoop(skills(), SkillRunner())
    bram = Character(id="bram", name="Bram", skills=("time", "missing", "dice"))

    offered = loop.offer(bram, FakeChatModel(supports_tools=True))

    assert offered == (spec("time"), spec("dice"))  # in the character's order; unknown left out
    assert loop.offer(bram, FakeChatModel()) == ()  # e.g. llama.cpp: no tools
    assert ToolLoop(skills(), SkillRunner(), max_rounds=0).offer(bram, FakeChatModel()) == ()


def test_a_negative_round_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_rounds"):
        ToolLoop(skills(), SkillRunner(), max_rounds=-1)


# --- bad input from the model -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        pytest.param('{"expression": "2d6"', "not JSON", id="not-json"),
        pytest.param('["2d6"]', "JSON list, not an object", id="not-an-object"),
        pytest.param('{"expression": 12}', "expression: expected string", id="wrong-type"),
        pytest.param('{"sides": 6}', "expression: required", id="missing"),
    ],
)
async def test_bad_arguments_get_the_schema_fed_back_once(arguments: str, problem: str) -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", arguments))
    run.model.enqueue_tool_calls(("dice", {"expression": "2d6"}))
    run.model.enqueue("Seven or so.")

    chunks = await run.run(ask("dice"))

    assert text_of(chunks) == "Seven or so."
    [refusal] = run.tool_results(1)
    assert problem in refusal["error"]
    assert refusal["parameters"] == dict(skills()["dice"].parameters)
    [rolled] = run.tool_results(2)[1:]  # the second round's result, after the refusal
    assert rolled["data"]["total"] == sum(rolls(2, 6))
    assert run.called == [("dice", True)]  # the refused call never reached the skill


async def test_bad_arguments_twice_fail_clearly_and_withdraw_the_skill() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", "roll two dice"))
    run.model.enqueue_tool_calls(("dice", '{"expression": 2}'))
    run.model.enqueue("I cannot roll right now.")

    chunks = await run.run(ask("dice", "time"))

    assert text_of(chunks) == "I cannot roll right now."
    _, failure = run.tool_results(2)
    assert failure["error"].startswith("dice failed: invalid arguments again")
    assert "not available for the rest of this reply" in failure["error"]
    third = run.model.requests[2]
    assert [t.name for t in third.tools] == ["time"]  # dice withdrawn
    assert run.called == [("dice", False)]


async def test_when_every_tool_is_withdrawn_the_model_must_answer() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("dice", "?"))
    run.model.enqueue_tool_calls(("dice", "??"))
    run.model.enqueue("Fine, no dice.")

    await run.run(ask("dice"))

    assert run.model.requests[2].tool_choice == "none"


async def test_a_call_to_an_unknown_tool_gets_an_error_result() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("weather", {"city": "Paris"}), ("broken", {}))
    run.model.enqueue("No weather here.")

    chunks = await run.run(ask("dice", "time"))  # broken exists, but was not offered

    assert text_of(chunks) == "No weather here."
    weather, broken = run.tool_results(1)
    assert weather == {"error": "there is no tool 'weather'; the tools are: dice, time"}
    assert broken == {"error": "there is no tool 'broken'; the tools are: dice, time"}
    assert run.called == []


async def test_a_skill_that_raises_gives_an_error_result_not_a_dead_turn() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("broken", {}))
    run.model.enqueue("Sorry, that did not work.")

    chunks = await run.run(ask("broken"))

    assert text_of(chunks) == "Sorry, that did not work."
    assert run.tool_results(1) == [{"error": "an internal error"}]
    assert run.called == [("broken", False)]


async def test_no_arguments_at_all_are_an_empty_object() -> None:
    run = Loop()
    run.model.enqueue_tool_calls(("time", ""))
    run.model.enqueue("Noon.")

    await run.run(ask("time"))

    [result] = run.tool_results(1)
    assert result["data"]["timezone"] == "UTC"


# --- the round bound --------------------------------------------------------------------------


async def test_after_the_last_round_the_model_is_told_to_answer() -> None:
    run = Loop(max_rounds=2)
    for _ in range(2):
        run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))
    run.model.enqueue("That is enough rolling.")

    chunks = await run.run(ask("dice"))

    assert text_of(chunks) == "That is enough rolling."
    assert [r.tool_choice for r in run.model.requests] == ["auto", "auto", "none"]
    assert [t.name for t in run.model.requests[2].tools] == ["dice"]  # still described
    assert len(run.called) == 2


async def test_a_model_that_still_calls_tools_with_nothing_to_say_fails_clearly() -> None:
    run = Loop(max_rounds=1)
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))

    with pytest.raises(BackendProtocolError, match=r"still asked for tools after 1 round"):
        await run.run(ask("dice"))

    assert len(run.called) == 1  # the call past the bound was not run


async def test_a_call_past_the_bound_with_an_answer_keeps_the_answer() -> None:
    run = Loop(max_rounds=1)
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))
    run.model.enqueue_tool_calls(("dice", {"expression": "1d6"}), text="It shows a 3.")

    chunks = await run.run(ask("dice"))

    assert text_of(chunks) == "It shows a 3."
    assert len(run.called) == 1


# --- broken backends --------------------------------------------------------------------------


class Scripted(FakeChatModel):
    """Streams exactly the chunks it is given."""

    def __init__(self, *chunks: ModelChunk) -> None:
        super().__init__(supports_tools=True)
        self.chunks = chunks

    async def stream(self, request: ChatRequest) -> Any:
        self.requests.append(request)
        for chunk in self.chunks:
            yield chunk


@pytest.mark.parametrize(
    ("deltas", "message"),
    [
        pytest.param(
            (ToolCallDelta(0, arguments="{}"),), "tool call 0 has no function name", id="no-name"
        ),
        pytest.param(
            (ToolCallDelta(0, id="a", name="dice"), ToolCallDelta(0, id="b")),
            "changed its id",
            id="id-changes",
        ),
        pytest.param((ToolCallDelta(-1, id="a", name="dice"),), "negative", id="bad-index"),
    ],
)
async def test_pieces_that_make_no_whole_call_are_a_protocol_error(
    deltas: tuple[ToolCallDelta, ...], message: str
) -> None:
    loop = ToolLoop(skills(), SkillRunner())
    model = Scripted(*(ModelChunk(tool_calls=(d,)) for d in deltas), ModelChunk(finish_reason="x"))

    with pytest.raises(BackendProtocolError, match=message) as caught:
        async with aclosing(loop.stream(model, ask("dice"), CONTEXT)) as chunks:
            _ = [chunk async for chunk in chunks]

    assert caught.value.backend == "fake"


# --- whole turns, on the real store -----------------------------------------------------------


class Harness:
    def __init__(self, tmp_path: Path, max_rounds: int = 3) -> None:
        self.model = FakeChatModel(supports_tools=True)
        self.store = SqliteConversationStore(tmp_path / "personae.sqlite3")
        self.service = ChatService(
            catalog=CharacterCatalog([Character(id="bram", name="Bram", skills=("dice", "time"))]),
            store=self.store,
            routes=ModelRoutes({"fake": self.model}, default="fake"),
            lock=LocalConversationLock(),
            settings=TurnSettings(max_tool_rounds=max_rounds),
            skills=SkillStage(skills(), SkillRunner(timeout_s=1.0)),
        )

    async def run(self, text: str) -> list[TurnEvent]:
        inbound = InboundMessage(user="sam", character_id="bram", text=text)
        async with aclosing(self.service.turn(inbound)) as events:
            return [event async for event in events]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path)
    async with made.store:
        yield made


async def test_a_turn_stores_only_the_final_answer(harness: Harness) -> None:
    harness.model.enqueue_tool_calls(("dice", {"expression": "3d6"}))
    harness.model.enqueue("Three dice, rolled.")

    events = await harness.run("Throw three dice please")

    assert "".join(e.text for e in events if isinstance(e, MessageDelta)) == "Three dice, rolled."
    done = events[-1]
    assert isinstance(done, MessageDone)
    stored = await harness.store.list_messages(done.conversation_id)
    assert [(m.role, m.content) for m in stored] == [
        (Role.USER, "Throw three dice please"),
        (Role.ASSISTANT, "Three dice, rolled."),
    ]
    assert [t.name for t in harness.model.requests[0].tools] == ["dice", "time"]


async def test_a_stream_that_breaks_after_a_tool_call_leaves_no_trace(harness: Harness) -> None:
    harness.model.enqueue_tool_calls(
        ("dice", {"expression": "1d6"}), error=BackendUnavailable("gone", backend="fake")
    )

    with pytest.raises(BackendUnavailable):
        await harness.run("Roll a die for me")

    user = await harness.store.get_user("sam")
    assert user is None  # the turn was discarded: nothing reached the user
    assert len(harness.model.requests) == 1


async def test_an_empty_answer_after_a_tool_round_fails_the_turn(harness: Harness) -> None:
    harness.model.enqueue_tool_calls(("dice", {"expression": "1d6"}))
    harness.model.enqueue([])

    with pytest.raises(BackendProtocolError, match="empty reply"):
        await harness.run("Roll a die for me")

    assert await harness.store.get_user("sam") is None


async def test_a_cancelled_turn_mid_tool_round_leaves_no_trace(tmp_path: Path) -> None:
    running = asyncio.Event()

    class Slow(Skill):
        name = "dice"

        async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
            running.set()
            await asyncio.sleep(30)
            return SkillResult(text="never")

    made = Harness(tmp_path)
    made.service = ChatService(
        catalog=CharacterCatalog([Character(id="bram", name="Bram", skills=("dice",))]),
        store=made.store,
        routes=ModelRoutes({"fake": made.model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        skills=SkillStage({"dice": Slow()}, SkillRunner(timeout_s=60)),
    )
    made.model.enqueue_tool_calls(("dice", {}))
    async with made.store:
        task = asyncio.create_task(made.run("roll"))
        await running.wait()  # the skill runs: cancelled in the middle of a tool round
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await made.service.drain()
        assert await made.store.get_user("sam") is None


# --- the pieces -------------------------------------------------------------------------------


def test_the_assembler_joins_interleaved_pieces_and_tolerates_repeats() -> None:
    assembler = ToolCallAssembler()
    assembler.feed(
        [
            ToolCallDelta(1, id="b", name="time"),
            ToolCallDelta(0, id="a", name="dice"),
            ToolCallDelta(0, id="a", name="dice", arguments='{"expr'),  # id and name repeated
            ToolCallDelta(1, arguments="{}"),
            ToolCallDelta(0, arguments='ession": "d6"}'),
            ToolCallDelta(2, name="ti"),  # a name in pieces, and no id at all
            ToolCallDelta(2, name="me"),
        ]
    )

    assert assembler.calls() == (
        ToolCall("a", "dice", '{"expression": "d6"}'),
        ToolCall("b", "time", "{}"),
        ToolCall("call_2", "time", ""),
    )


def test_the_assembler_refuses_a_call_without_a_name() -> None:
    assembler = ToolCallAssembler()
    assembler.feed([ToolCallDelta(0, id="a", arguments="{}")])
    with pytest.raises(ToolCallError, match="no function name"):
        assembler.calls()


def test_parse_arguments() -> None:
    schema = skills()["dice"].parameters
    assert parse_arguments('{"expression": "d6"}', schema) == {"expression": "d6"}
    with pytest.raises(ValueError, match="not allowed"):
        parse_arguments('{"expression": "d6", "x": 1}', schema)


def test_a_request_without_tools_for_a_model_that_cannot_call_them() -> None:
    call = ToolCall("c1", "dice", "{}")
    request = ChatRequest(
        messages=(
            *HELLO,
            ChatMessage(Role.ASSISTANT, "", tool_calls=(call,)),
            ChatMessage(Role.TOOL, '{"result": "4"}', name="dice", tool_call_id="c1"),
            ChatMessage(Role.ASSISTANT, "Rolling again.", tool_calls=(call,)),
        ),
        tools=(spec("dice"),),
        tool_choice="none",
    )

    plain = without_tools(request)

    assert plain.tools == ()
    assert plain.tool_choice == "auto"
    assert plain.messages == (
        *HELLO,
        ChatMessage(Role.SYSTEM, '[skill dice result: {"result": "4"}]'),
        ChatMessage(Role.ASSISTANT, "Rolling again."),
    )
    untouched = ChatRequest(messages=HELLO)
    assert without_tools(untouched) is untouched


async def test_pii_is_restored_for_the_skill_and_redacted_in_its_result(tmp_path: Path) -> None:
    seen: list[str] = []

    class Mail(Skill):
        name = "mail"
        parameters: Mapping[str, Any] = {
            "type": "object",
            "properties": {"to": {"type": "string"}},
            "required": ["to"],
        }

        async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
            seen.append(args["to"])
            return SkillResult(text=f"sent to {args['to']}", data={"to": args["to"]})

    model = FakeChatModel(supports_tools=True)  # remote, as any model is by default
    store = SqliteConversationStore(tmp_path / "personae.sqlite3")
    service = ChatService(
        catalog=CharacterCatalog([Character(id="bram", name="Bram", skills=("mail",))]),
        store=store,
        routes=ModelRoutes({"fake": model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        skills=SkillStage({"mail": Mail()}, SkillRunner()),
        content=ContentPolicy(redactor=Redactor()),
    )
    model.enqueue_tool_calls(("mail", {"to": "[EMAIL_1]"}))
    model.enqueue("Sent to [EMAIL_1].")
    inbound = InboundMessage(user="sam", character_id="bram", text="Mail ann@example.com please")

    async with store, aclosing(service.turn(inbound)) as events:
        replies = [e.text async for e in events if isinstance(e, MessageDelta)]

    assert seen == ["ann@example.com"]  # the skill got the user's value
    first, second = model.requests
    assert "ann@example.com" not in repr(first) + repr(second)  # the backend never saw it
    assert json.loads(second.messages[-1].content)["data"] == {"to": "[EMAIL_1]"}
    assert "".join(replies) == "Sent to ann@example.com."  # and the user reads it restored


def test_lore_cannot_take_the_tool_role() -> None:
    # A tool message answers a model's call; lore written as one would be an orphan.
    refused = parse_decorators("@@role tool\nThe tavern is closed.")
    assert refused.decorators.role is None
    assert refused.warnings == ("@@role: 'tool' is not system, user or assistant (ignored)",)
    assert parse_decorators("@@role user\nClosed.").decorators.role is Role.USER
