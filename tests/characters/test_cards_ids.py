"""The id a card's character gets: ``extensions.personae.id`` when present, else the slug of
its name."""

from __future__ import annotations

import json

import pytest

from personae.characters.cards import ExportFormat, decode_character, encode_character, slug
from personae.core.characters import CHARACTER_ID
from personae.errors import CharacterDefinitionError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Wren Halloway", "wren-halloway"),
        ("  Dr. Émile Zola-Ng (v2)!  ", "dr-emile-zola-ng-v2"),
        ("ÆSIR_Løki", "sir-lki"),  # letters with no ASCII form are dropped
        ("x" * 80, "x" * 64),
    ],
)
def test_slugs(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_a_name_without_latin_letters_gets_a_stable_hashed_id() -> None:
    assert slug("アリア") == slug("アリア")
    assert slug("アリア").startswith("character-")
    assert slug("アリア") != slug("ブラム")
    assert CHARACTER_ID.match(slug("アリア"))


def card(**extensions: object) -> bytes:
    data = {"name": "Wren Halloway", "extensions": extensions}
    return json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": data}).encode()


def test_the_card_can_carry_its_id() -> None:
    character = decode_character(card(personae={"id": "wren-2"}), suffix=".json", source="w")
    assert character.id == "wren-2"
    assert decode_character(card(), suffix=".json", source="w").id == "wren-halloway"


def test_export_writes_the_id_only_when_the_name_would_not_give_it() -> None:
    plain = decode_character(card(), suffix=".json", source="w")
    assert (
        "personae" not in json.loads(encode_character(plain, ExportFormat.V2))["data"]["extensions"]
    )
    renamed = plain.model_copy(update={"id": "greenhouse-wren"})
    exported = json.loads(encode_character(renamed, ExportFormat.V2))
    assert exported["data"]["extensions"]["personae"] == {"id": "greenhouse-wren"}
    again = decode_character(json.dumps(exported).encode(), suffix=".json", source="w")
    assert again.id == "greenhouse-wren"


def test_a_cards_skills_round_trip_through_the_personae_extension() -> None:
    character = decode_character(card(personae={"skills": ["dice"]}), suffix=".json", source="w")
    assert character.skills == ("dice",)
    exported = json.loads(encode_character(character, ExportFormat.V3))
    assert exported["data"]["extensions"]["personae"] == {"skills": ["dice"]}
    native = character.model_copy(update={"skills": ("time", "dice")})
    exported = json.loads(encode_character(native, ExportFormat.V2))
    assert exported["data"]["extensions"]["personae"]["skills"] == ["time", "dice"]
    none = character.model_copy(update={"skills": ()})
    assert (
        "personae" not in json.loads(encode_character(none, ExportFormat.V2))["data"]["extensions"]
    )


def test_skills_that_are_not_names_are_refused() -> None:
    with pytest.raises(CharacterDefinitionError, match=r"personae\.skills: expected a list"):
        decode_character(card(personae={"skills": "dice"}), suffix=".json", source="w")
