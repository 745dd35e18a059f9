"""The behaviour section as the loader reads it: each kind of mistake is refused one by one,
with the file, the line and a clear message; a valid section round-trips through export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from personae.characters.cards import decode_character, encode_character
from personae.characters.cards.codec import ExportFormat
from personae.characters.loader import load_character_file
from personae.characters.native import dump_character_yaml
from personae.core.behaviour.parse import parse_behaviour
from personae.core.behaviour.validate import BehaviourInvalid
from personae.core.characters import parse_character_yaml
from personae.errors import CharacterDefinitionError

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"

HEAD = """\
id: kit
name: Kit
greetings: [Hello., Back again.]
skills: [dice]
behaviour:
"""
# Line 6 is the first line of the section body.
VALID = """\
  variables:
    mood: enum(neutral, happy, hurt) = neutral
    affinity: int 0..100 = 30
  initial: calm
  states:
    calm:
      instruction: "{{char}} is calm."
    cross: {instruction: "{{char}} is cross with {{user}}."}
  transitions:
    - from: calm
      to: cross
      when: sentiment < -0.4
      do:
        - set: {mood: hurt}
        - decrement: {affinity: 10}
    - from: cross
      to: calm
      when: intent == "apology"
"""


def load(body: str) -> object:
    return parse_character_yaml(HEAD + body, source="chars/kit.yaml")


def refused(body: str) -> str:
    with pytest.raises(CharacterDefinitionError) as error:
        load(body)
    return str(error.value)


def test_the_valid_section_loads() -> None:
    character = parse_character_yaml(HEAD + VALID, source="chars/kit.yaml")
    spec = character.machine
    assert spec is not None
    assert spec.initial == "calm"
    assert [s.name for s in spec.states] == ["calm", "cross"]
    assert spec.variable("affinity").maximum == 100


def edit(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new, 1)


# Each case: the edit, the line the error must name, and words the message must hold.
CASES = [
    pytest.param(
        edit("when: sentiment < -0.4", "when: afection < 3"),
        17,
        "unknown variable 'afection'",
        id="unknown-variable-in-guard",
    ),
    pytest.param(
        edit("- set: {mood: hurt}", "- set: {temper: hurt}"),
        19,
        "unknown variable 'temper'",
        id="unknown-variable-set",
    ),
    pytest.param(
        edit("- set: {mood: hurt}", "- set: {sentiment: 1.0}"),
        19,
        "'sentiment' is read-only",
        id="builtin-is-read-only",
    ),
    pytest.param(
        edit("to: cross", "to: crosss"),
        16,
        "transitions[0].to: unknown state 'crosss'",
        id="missing-target",
    ),
    pytest.param(
        edit("- from: cross", "- from: angry"),
        21,
        "transitions[1].from: unknown state 'angry'",
        id="unknown-source",
    ),
    pytest.param(
        edit("initial: calm", "initial: sleepy"), 9, "unknown state 'sleepy'", id="unknown-initial"
    ),
    pytest.param(
        edit("    cross: {", "    lost: {instruction: x}\n    cross: {"),
        13,
        "state 'lost' is unreachable",
        id="unreachable-state",
    ),
    pytest.param(
        edit("when: sentiment < -0.4", "when: affinity > 'high'"),
        17,
        "cannot order int and str",
        id="int-versus-string",
    ),
    pytest.param(
        edit("when: sentiment < -0.4", "when: affinity + 1"),
        17,
        "gives int, not bool",
        id="guard-not-bool",
    ),
    pytest.param(
        edit("- set: {mood: hurt}", "- set: {mood: furious}"),
        19,
        "'furious' is not a value of mood",
        id="enum-value-not-in-enum",
    ),
    pytest.param(
        edit('when: intent == "apology"', 'when: intent == "apologize"'),
        23,
        "'apologize' is not a value of intent",
        id="unknown-intent",
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- set: {affinity: 150}"),
        20,
        "150 is outside affinity's range 0..100",
        id="out-of-range-literal",
    ),
    pytest.param(
        edit("affinity: int 0..100 = 30", "affinity: int 0..100 = 300"),
        8,
        "outside the range",
        id="default-out-of-range",
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- decrement: {mood: 1}"),
        20,
        "only numbers count up",
        id="decrement-an-enum",
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- set: {affinity: sentiment * 10}"),
        20,
        "affinity is int, not float (round(...) makes it an int)",
        id="float-into-int",
    ),
    pytest.param(
        edit("    cross: {", "    calm: {instruction: again}\n    cross: {"),
        13,
        "'calm' is given twice",
        id="duplicate-state",
    ),
    pytest.param(
        edit("    affinity:", "    mood: bool\n    affinity:"),
        8,
        "'mood' is given twice",
        id="duplicate-variable",
    ),
    pytest.param(
        edit("    mood:", "    turn: int\n    mood:"),
        7,
        "'turn' is given twice: it is a built-in name",
        id="variable-named-like-a-builtin",
    ),
    pytest.param(
        edit("when: sentiment < -0.4", "when: sentiment < -0.4 and (affinity > 3"),
        17,
        "expected ')', found the end (column 35)",
        id="bad-syntax-with-column",
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- shout: loud"),
        20,
        "unknown effect 'shout'",
        id="unknown-effect",
    ),
    pytest.param(
        edit("      when: intent", "      wen: intent"), 23, "unknown key 'wen'", id="unknown-key"
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- greet: 5"),
        20,
        "greeting 5 does not exist (the character has 2",
        id="greeting-out-of-range",
    ),
    pytest.param(
        edit("- decrement: {affinity: 10}", "- skill: {name: weather}"),
        20,
        "skill 'weather' is not in the character's skills",
        id="skill-not-listed",
    ),
    pytest.param(
        edit("affinity: int 0..100 = 30", "affinity: integer"),
        8,
        "expected a type such as",
        id="unknown-type",
    ),
]


@pytest.mark.parametrize(("body", "line", "message"), CASES)
def test_each_mistake_is_refused_with_file_line_and_message(
    body: str, line: int, message: str
) -> None:
    text = refused(body)
    assert text.startswith("chars/kit.yaml: behaviour: ")
    assert f"line {line}: " in text, text
    assert message in text


def test_every_mistake_is_reported_at_once() -> None:
    body = edit("to: cross", "to: nowhere").replace("afinity", "x")
    body = body.replace("- set: {mood: hurt}", "- set: {mood: sad}")
    with pytest.raises(BehaviourInvalid) as error:
        parse_behaviour(yaml.safe_load(body), source="kit.yaml", greetings=2, skills=("dice",))
    assert len(error.value.errors) >= 3  # the target, the enum value, the unreachable state
    assert {e.source for e in error.value.errors} == {"kit.yaml"}


def test_the_loader_reports_the_file_and_keeps_going(tmp_path: Path) -> None:
    broken = tmp_path / "kit.yaml"
    broken.write_text(HEAD + edit("to: cross", "to: crosss"), encoding="utf-8")
    with pytest.raises(CharacterDefinitionError) as error:
        load_character_file(broken)
    assert str(error.value).startswith(f"{broken}: behaviour: line 16:")


def test_custom_tags_are_refused_in_the_section() -> None:
    text = refused(edit("when: sentiment < -0.4", "when: !!python/object:os.system ls"))
    assert "not valid YAML" in text


def test_a_yaml_export_keeps_the_section_and_reads_back_equal() -> None:
    mira = load_character_file(REPO_CHARACTERS / "mira.yaml")
    again = parse_character_yaml(dump_character_yaml(mira), source="again.yaml")
    assert again == mira
    assert again.behaviour == mira.behaviour
    assert again.machine == mira.machine


@pytest.mark.parametrize("spec", ["v2", "v3"])
def test_cards_carry_the_section_in_extensions_personae(spec: str) -> None:
    mira = load_character_file(REPO_CHARACTERS / "mira.yaml")
    data = encode_character(mira, ExportFormat(spec))
    card = json.loads(data)
    assert card["data"]["extensions"]["personae"]["behaviour"] == mira.behaviour
    back = decode_character(data, suffix=".json", source="mira.json")
    assert back.behaviour == mira.behaviour
    assert back.machine is not None
    assert back.machine.state_names == mira.machine.state_names  # type: ignore[union-attr]


def test_a_broken_section_in_a_card_names_its_path() -> None:
    mira = load_character_file(REPO_CHARACTERS / "mira.yaml")
    card = json.loads(encode_character(mira, ExportFormat.V3))
    card["data"]["extensions"]["personae"]["behaviour"]["transitions"][0]["to"] = "nowhere"
    with pytest.raises(CharacterDefinitionError) as error:
        decode_character(json.dumps(card).encode(), suffix=".json", source="mira.json")
    assert "extensions.personae.behaviour.transitions[0].to: unknown state 'nowhere'" in str(
        error.value
    )
