"""The pure parts of records and replays: sampling by conversation, the route listener (each
stream hears only its own routes), records as JSON data and back, replay plans (every
mistake a clear ``InvalidInput``), recorded memory by turn, and prompt diffs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import pytest

from personae.core.experiments.spec import Experiment, Variant
from personae.core.overrides import ExperimentTag, Overrides
from personae.core.prompt import AssembledPrompt
from personae.core.replay import RecordedMemory, plan_replay, prompt_diff
from personae.core.route_log import RouteTaken, listening, report_route
from personae.core.turn_record import TurnRecord, record_data, record_of
from personae.core.turn_recorder import sampled
from personae.core.types import (
    ChatMessage,
    Conversation,
    Message,
    OpenedTurn,
    Role,
    SamplingOverrides,
    User,
)
from personae.errors import InvalidInput

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_sampling_is_by_conversation_stable_and_near_the_rate() -> None:
    ids = [f"conv_{n:05d}" for n in range(4000)]
    chosen = [i for i in ids if sampled(i, 0.1)]
    assert 0.08 < len(chosen) / len(ids) < 0.12
    assert chosen == [i for i in ids if sampled(i, 0.1)]  # the same answer every time
    assert all(sampled(i, 1.0) for i in ids[:50])
    assert not any(sampled(i, 0.0) for i in ids[:50])


async def test_each_stream_hears_only_its_own_routes() -> None:
    async def routed(name: str, delay: float) -> AsyncGenerator[str, None]:
        await asyncio.sleep(delay)
        report_route(RouteTaken((name,), name))
        yield name
        await asyncio.sleep(delay)
        yield name

    heard: dict[str, list[RouteTaken]] = {"x": [], "y": []}

    async def consume(name: str, delay: float) -> list[str]:
        return [item async for item in listening(routed(name, delay), heard[name].append)]

    got = await asyncio.gather(consume("x", 0.02), consume("y", 0.01))
    assert got == [["x", "x"], ["y", "y"]]
    assert heard == {"x": [RouteTaken(("x",), "x")], "y": [RouteTaken(("y",), "y")]}
    report_route(RouteTaken(("z",), "z"))  # nobody listening: nothing happens
    assert len(heard["x"]) == 1


def a_record(**changes: object) -> TurnRecord:
    fields: dict[str, object] = {
        "turn_id": "msg_1",
        "conversation_id": "conv_1",
        "user_message_id": "msg_0",
        "user": "sam",
        "character_id": "vera",
        "character_version": None,
        "created_at": NOW,
        "model": "a",
        "prompt": (ChatMessage(Role.SYSTEM, "You are Vera."), ChatMessage(Role.USER, "hi")),
        "prompt_tokens": 4,
        "overrides": Overrides(generation=SamplingOverrides(max_tokens=9)),
        "experiment": ExperimentTag("e", "v"),
    }
    fields.update(changes)
    return TurnRecord(**fields)  # type: ignore[arg-type]


def test_a_record_as_data_and_back() -> None:
    record = a_record()
    assert record_of(record_data(record)) == record
    with pytest.raises(InvalidInput, match="format"):
        record_of({**record_data(record), "format": 99})
    broken = record_data(record)
    del broken["prompt"]
    with pytest.raises(InvalidInput, match="broken turn record"):
        record_of(broken)
    bad_role = record_data(record)
    bad_role["prompt"] = [{"role": "wizard", "content": "x"}]
    with pytest.raises(InvalidInput, match="broken turn record"):
        record_of(bad_role)


def experiments(experiment_id: str) -> Experiment | None:
    if experiment_id != "tone":
        return None
    variant = Variant("warm", 50.0, Overrides(instructions="Be warm.", route=("b",)))
    return Experiment("tone", (variant,))


def test_a_plan_from_a_variant_and_explicit_changes() -> None:
    plan = plan_replay(" conv_1 ", variant="tone:warm", experiments=experiments)
    assert plan.conversation_id == "conv_1"
    assert plan.overrides == Overrides(instructions="Be warm.", route=("b",))
    assert plan.experiment == ExperimentTag("tone", "warm")
    assert plan.label == "variant tone:warm, route b, extra instructions"
    # What is named explicitly wins over the variant.
    plan = plan_replay(
        "conv_1",
        variant="tone:warm",
        route="a, b",
        params=["temperature=0.2", "max_tokens=50"],
        experiments=experiments,
    )
    assert plan.overrides.route == ("a", "b")
    assert plan.overrides.generation == SamplingOverrides(max_tokens=50, temperature=0.2)
    assert plan.overrides.instructions == "Be warm."
    control = plan_replay("conv_1", variant="tone:control", route="a", experiments=experiments)
    assert control.experiment == ExperimentTag("tone", "control")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "a replay changes something"),
        ({"route": " , "}, "at least one backend"),
        ({"params": ["temperature"]}, "NAME=VALUE"),
        ({"params": ["colour=red"]}, "unknown parameter"),
        ({"params": ["temperature=hot"]}, "temperature"),
        ({"params": ["top_p=7"]}, "top_p"),
        ({"variant": "tone"}, "EXPERIMENT:VARIANT"),
        ({"variant": "mood:warm"}, "no experiment 'mood'"),
        ({"variant": "tone:cold"}, "has no variant 'cold'; it has control, warm"),
    ],
)
def test_bad_plans_are_clear_errors(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        plan_replay("conv_1", experiments=experiments, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="names the conversation"):
        plan_replay("  ", route="a")


def opened(user_turn: int) -> OpenedTurn:
    user = User("u1", "sam", NOW)
    conversation = Conversation("conv_1", "u1", "vera", NOW, NOW)
    message = Message("msg_1", "conv_1", 1, Role.USER, "hi", NOW)
    return OpenedTurn(user, conversation, message, False, False, user_turn=user_turn)


async def test_recorded_memory_gives_each_turn_its_own_note() -> None:
    memory = RecordedMemory(["NOTE-ONE", None, "NOTE-THREE"])
    prompt = AssembledPrompt((ChatMessage(Role.USER, "hi"),), 1, 0, 0, 0)
    first = await memory.enrich(prompt, opened(1), lambda text: len(text.split()))
    assert [m.content for m in first.messages] == ["NOTE-ONE", "hi"]
    assert await memory.enrich(prompt, opened(2), len) == prompt
    assert (await memory.enrich(prompt, opened(3), len)).messages[0].content == "NOTE-THREE"
    assert await memory.enrich(prompt, opened(4), len) == prompt  # beyond the recording


def test_prompt_diff() -> None:
    before = a_record()
    after = a_record(
        prompt=(ChatMessage(Role.SYSTEM, "You are Vera."), ChatMessage(Role.USER, "yo"))
    )
    diff = prompt_diff(before, after)
    assert diff is not None
    assert "-hi" in diff
    assert "+yo" in diff
    assert prompt_diff(before, before) == ()
    assert prompt_diff(None, after) is None
