from personae.characters.native import dump_character_yaml
from personae.core.characters import parse_character_yaml
from tests.core.test_characters import FULL_YAML, MINIMAL


def test_every_field_dumps_to_yaml_and_reads_back_equal() -> None:
    character = parse_character_yaml(FULL_YAML, source="wren.yaml")
    text = dump_character_yaml(character)
    assert "source_format" not in text
    assert "persona: |" in text  # multi-line text as a literal block
    assert parse_character_yaml(text, source="again.yaml") == character


def test_a_minimal_character_dumps_to_a_minimal_file() -> None:
    assert dump_character_yaml(parse_character_yaml(MINIMAL, source="kit.yaml")) == MINIMAL


def test_text_a_block_cannot_hold_is_quoted_and_still_exact() -> None:
    tricky = parse_character_yaml(
        'id: k\nname: K\npersona: "trailing  \\n\\tspaces \\u0007 and: colons\\n"\n', source="k"
    )
    assert parse_character_yaml(dump_character_yaml(tricky), source="k") == tricky
