"""Cross-character scope: a character sees what the user told other characters only when its
definition says ``memory: {cross_character: true}``; by default each (user, character) pair's
memory is its own, and another user's memory is never seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.characters.native import dump_character_yaml
from personae.core.characters import Character, parse_character_yaml
from personae.core.memory.midterm import MidTermSettings
from personae.core.memory.stage import RECALL_HEADING
from personae.errors import CharacterDefinitionError
from tests.memory.midterm_harness import MIRA, MidTermHarness, note_with, profile_note

OREN_YAML = """\
id: oren
name: Oren
persona: "{{char}} runs the harbour cafe."
memory:
  cross_character: true
"""
NOVA = Character(id="nova", name="Nova", persona="{{char}} reads the stars.")
PLANTED = "Grandma painted the old lighthouse door bright blue every spring."


def test_the_setting_is_read_from_yaml_defaults_off_and_round_trips() -> None:
    oren = parse_character_yaml(OREN_YAML, source="oren.yaml")
    assert oren.memory.cross_character is True
    assert MIRA.memory.cross_character is False
    assert "memory" not in dump_character_yaml(MIRA)  # a default is not written
    again = parse_character_yaml(dump_character_yaml(oren), source="again.yaml")
    assert again.memory == oren.memory


@pytest.mark.parametrize(
    ("memory", "error"),
    [("{cross_character: maybe}", "cross_character"), ("{share: true}", "share")],
)
def test_a_bad_setting_is_a_clear_error(memory: str, error: str) -> None:
    text = OREN_YAML.replace("memory:\n  cross_character: true\n", f"memory: {memory}\n")
    with pytest.raises(CharacterDefinitionError, match=error):
        parse_character_yaml(text, source="oren.yaml")


async def test_only_a_sharing_character_sees_the_users_memory_with_others(
    tmp_path: Path,
) -> None:
    oren = parse_character_yaml(OREN_YAML, source="oren.yaml")
    settings = MidTermSettings(summary_tokens=0, extract_every_turns=0)
    async with MidTermHarness(
        tmp_path / "p.db", window_turns=5, settings=settings, characters=(MIRA, oren, NOVA)
    ) as h:
        await h.say("My name is Sam Okafor.", character="mira")
        await h.say(PLANTED, character="mira")
        await h.say("I like dark roast coffee.", character="nova")
        await h.say("My name is Alice.", user="alice", character="mira")

        to_oren = await h.say(
            "Who am I, and what colour was the lighthouse door?", character="oren"
        )
        to_nova = await h.say(
            "Who am I, and what colour was the lighthouse door?", character="nova"
        )
        to_mira = await h.say("What coffee do I like?", character="mira")

    # Oren shares: the profile and recall reach the user's talks with Mira and Nova.
    profile = profile_note(to_oren)
    assert "- The user's name is Sam Okafor." in profile
    assert "- The user likes dark roast coffee." in profile
    assert f"The user said (with mira): {PLANTED}" in note_with(to_oren, RECALL_HEADING)
    # Nova and Mira keep to their own pair.
    assert "Sam Okafor" not in " ".join(m.content for m in to_nova)
    assert "lighthouse door bright blue" not in " ".join(m.content for m in to_nova)
    assert "dark roast" not in " ".join(m.content for m in to_mira[:-1])
    # Nobody ever sees Alice's.
    for messages in (to_oren, to_nova, to_mira):
        assert "Alice" not in " ".join(m.content for m in messages)
