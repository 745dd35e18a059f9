import pytest

from personae.core.characters import parse_character_yaml
from personae.core.macros import expand
from personae.core.types import Role
from personae.errors import CharacterDefinitionError

MINIMAL = "id: kit\nname: Kit\n"


def test_minimal_character_has_empty_optional_fields() -> None:
    character = parse_character_yaml(MINIMAL, source="kit.yaml")
    assert (character.id, character.name, character.greeting) == ("kit", "Kit", None)
    assert character.persona_text == ""


def test_single_greeting_is_the_first_of_greetings() -> None:
    text = MINIMAL + "greeting: Hi there\n"
    assert parse_character_yaml(text, source="kit.yaml").greetings == ("Hi there",)


def test_description_stands_in_for_an_empty_persona() -> None:
    character = parse_character_yaml(MINIMAL + "description: A fox.\n", source="kit.yaml")
    assert character.persona_text == "A fox."


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id: Kit!\nname: Kit\n", "id:"),
        ("id: kit\n", "name: Field required"),
        ("id: kit\nname: Kit\nmood: happy\n", "mood: Extra inputs are not permitted"),
        ("id: kit\nname: Kit\ngreeting: a\ngreetings: [b]\n", "either 'greeting' or 'greetings'"),
        ("- just\n- a list\n", "expected a mapping"),
        ("id: [unclosed\n", "not valid YAML"),
        ("id: kit\nname: Kit\ngeneration: {temperature: 9}\n", "generation.temperature"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_invalid_definitions_name_the_file_and_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(CharacterDefinitionError) as caught:
        parse_character_yaml(text, source="kit.yaml")
    assert caught.value.source == "kit.yaml"
    assert str(caught.value).startswith("kit.yaml: ")
    assert fragment in str(caught.value)


def test_macros_expand_char_and_user_in_both_spellings() -> None:
    text = "{{char}} greets {{ user }}; <BOT> waves at <USER>. {{Char}}"
    assert expand(text, char="Aria", user="Sam") == "Aria greets Sam; Aria waves at Sam. Aria"


FULL_YAML = """\
id: wren
name: Wren Halloway
nickname: Wren
description: A gardener of glass trees.
persona: |
  {{char}} tends the glass orchards of Tern.
  She calls {{user}} 'sprout'.
personality: patient
scenario: A hailstorm.
greetings: [Mind the seedlings., "Tea?"]
group_only_greetings: [Everyone, boots off.]
example_dialogues:
  - "<START>\\nSam: hi\\nWren: hello\\n<START>\\nSam: bye\\nWren: mind the door"
system_prompt: "{{original}} Present tense."
post_history_instructions: Be brief.
creator_notes: Slow pace.
creator_notes_multilingual: {fr: Rythme lent.}
creator: someone
tags: [botany]
version: "2.1"
sources: [personae:test]
creation_date: 1700000000
modification_date: 1700003600.5
assets: [{type: icon, uri: "ccdefault:", name: main, ext: png, x_extra: 1}]
character_book: {entries: [{keys: [orchard], content: Glass rings at dawn.}]}
extensions: {world: Tern Almanac, depth_prompt: {prompt: Quiet., depth: 1, role: user}}
model: local
generation: {temperature: 0.4}
card_extras: {data: {x_future: 1}}
"""


def test_every_field_has_a_yaml_spelling() -> None:
    character = parse_character_yaml(FULL_YAML, source="wren.yaml")
    assert character.example_dialogues == ("Sam: hi\nWren: hello", "Sam: bye\nWren: mind the door")
    assert (character.char_name, character.world, character.summary) == (
        "Wren",
        "Tern Almanac",
        "A gardener of glass trees.",
    )
    assert character.depth_prompt is not None
    assert (character.depth_prompt.depth, character.depth_prompt.role) == (1, Role.USER)
    assert character.assets is not None
    assert character.assets[0].model_extra == {"x_extra": 1}
    assert character.card_extras.data == {"x_future": 1}
    assert (character.source_format, character.source_container) == ("yaml", "yaml")


def test_char_name_and_summary_fall_back() -> None:
    character = parse_character_yaml(MINIMAL + "nickname: ''\ncreator_notes: Notes.\n", source="k")
    assert character.char_name == "Kit"  # an empty nickname is no nickname
    assert character.summary == "Notes."
    assert character.world is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("character_book: {entries: [{keys: x, content: y}]}", "entries.0.keys"),
        ("character_book: {name: book}", "entries: Field required"),
        ("extensions: {depth_prompt: {prompt: x, role: narrator}}", "depth_prompt.role"),
        ("extensions: {depth_prompt: {prompt: x, role: tool}}", "depth_prompt.role"),
        ("extensions: {depth_prompt: {prompt: x, depth: '4'}}", "depth_prompt.depth"),
        ("extensions: {x: !!set {a: null}}", "is not JSON data"),
        ("assets: [{type: icon, uri: x, name: main}]", "assets.0.ext"),
        ("source_container: png", "set by the reader"),
    ],
)
def test_card_fields_are_validated_in_yaml_too(extra: str, fragment: str) -> None:
    with pytest.raises(CharacterDefinitionError) as caught:
        parse_character_yaml(MINIMAL + extra + "\n", source="kit.yaml")
    assert fragment in str(caught.value)
