import pytest

from personae.core.characters import parse_character_yaml
from personae.core.macros import expand
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
