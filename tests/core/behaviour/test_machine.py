"""Stepping a machine: order, one transition per turn, counters, clamping, restoring."""

from __future__ import annotations

import pytest

from personae.core.behaviour.machine import initial_state, restore, step
from personae.core.behaviour.parse import parse_behaviour
from personae.core.behaviour.sentiment import sentiment
from personae.core.behaviour.signals import TurnSignals, classify_intent, read_signals
from personae.core.behaviour.spec import BehaviourSpec
from personae.skills.dice import DiceSkill

SPEC: BehaviourSpec = parse_behaviour(
    {
        "variables": {"score": "int 0..10 = 5", "ratio": "float -1..1", "seen": "bool"},
        "states": {"a": "In a.", "b": None, "c": {"instruction": "In c."}},
        "transitions": [
            {
                "from": "a",
                "to": "b",
                "when": "mentions('go')",
                "do": [{"increment": {"score": 100}}],
            },
            {"from": "a", "to": "c", "when": "mentions('go') or mentions('jump')"},
            {"from": "b", "to": "c", "when": "turns_in_state >= 2"},
            {
                "from": "*",
                "do": [
                    {"decrement": {"score": 3}},
                    {"set": {"ratio": "score * 0.5", "seen": True}},
                ],
                "when": "mentions('down')",
            },
            {"from": "c", "to": "a", "when": "turn >= 6"},
        ],
    },
    source="test",
)


def said(text: str) -> TurnSignals:
    return TurnSignals(text=text, intent=classify_intent(text), sentiment=sentiment(text))


def test_the_first_matching_transition_fires_and_only_it() -> None:
    result = step(SPEC, initial_state(SPEC), said("go jump"))
    assert result.fired == 0
    assert result.state.node == "b"
    assert result.state.variables["score"] == 10  # clamped to the range
    assert [(c.name, c.old, c.new) for c in result.changes] == [
        ("state", "a", "b"),
        ("score", 5, 10),
    ]
    assert result.instructions == ()  # b has none


def test_nothing_fires_the_turn_still_counts_and_the_state_instruction_stays() -> None:
    result = step(SPEC, initial_state(SPEC), said("hello"))
    assert result.fired is None
    assert result.changes == ()
    assert result.state.turn == 1
    assert result.instructions == ("In a.",)


def test_turn_counters() -> None:
    state = step(SPEC, initial_state(SPEC), said("go")).state  # turn 1: a -> b
    assert (state.turn, state.entered_turn) == (1, 1)
    state = step(SPEC, state, said("hm")).state  # turn 2: 1 turn in b
    assert state.node == "b"
    state = step(SPEC, state, said("hm")).state  # turn 3: 2 turns in b -> c
    assert (state.node, state.entered_turn) == ("c", 3)
    for _ in range(2):
        state = step(SPEC, state, said("hm")).state
    assert state.node == "c"  # turn 5
    assert step(SPEC, state, said("hm")).state.node == "a"  # turn 6


def test_effects_run_in_order_and_see_each_other() -> None:
    result = step(SPEC, initial_state(SPEC), said("down"))
    assert result.state.node == "a"  # no target: stays
    assert result.state.variables == {"score": 2, "ratio": 1.0, "seen": True}  # 2 * 0.5 clamped
    assert result.state.entered_turn == 0  # not re-entered


def test_stepping_is_deterministic() -> None:
    state = initial_state(SPEC)
    assert step(SPEC, state, said("down go")) == step(SPEC, state, said("down go"))


def test_a_stored_state_is_fitted_to_a_changed_spec() -> None:
    stored = {
        "state": "gone",
        "variables": {"score": 99, "ratio": "high", "old": 1},
        "turn": 4,
        "entered_turn": 2,
    }
    state, fixed = restore(SPEC, stored)
    assert state.node == "a"
    assert state.variables == {"score": 10, "ratio": 0.0, "seen": False}
    assert (state.turn, state.entered_turn) == (4, 4)
    assert len(fixed) == 2  # the state and ratio
    assert restore(SPEC, None) == (initial_state(SPEC), [])


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("/roll 2d6", "command"),
        ("I'm so sorry", "apology"),
        ("Thanks a lot", "thanks"),
        ("Hello Mira", "greeting"),
        ("Good night", "farewell"),
        ("ok, see you", "farewell"),
        ("Where is the harbour", "question"),
        ("it rains?", "question"),
        ("The rain stopped.", "statement"),
    ],
)
def test_intents(text: str, intent: str) -> None:
    assert classify_intent(text) == intent


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("you are wonderful", 1),
        ("I hate you", -1),
        ("you are not nice", -1),
        ("you are not bad at all", 1),
        ("the boat is blue", 0),
    ],
)
def test_sentiment_tells_warm_from_hostile(text: str, sign: int) -> None:
    score = sentiment(text)
    assert -1 <= score <= 1
    assert (score > 0.1) - (score < -0.1) == sign


def test_intensifiers_and_exclamations_strengthen() -> None:
    assert sentiment("very good") > sentiment("good")
    assert sentiment("good!!") > sentiment("good")


def test_signals_name_the_skill_a_trigger_fires() -> None:
    assert read_signals("let me roll a d20", [DiceSkill()]).skill == "dice"
    assert read_signals("nice weather", [DiceSkill()]).skill == ""
