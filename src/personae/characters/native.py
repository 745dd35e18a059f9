"""The native YAML format, written: what ``parse_character_yaml`` reads back equal."""

from __future__ import annotations

import yaml

from personae.core.characters import SET_BY_READER, Character


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text as a literal block, as people write it; PyYAML falls back to quoting
    # where a block cannot hold the text exactly (trailing spaces, control characters).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_character_yaml(character: Character) -> str:
    """Only fields that differ from their defaults, in the model's order; where the character
    came from is left out (a YAML file is a YAML file)."""
    data = character.model_dump(mode="json", exclude=set(SET_BY_READER), exclude_defaults=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
