"""Import -> export -> import keeps every field, for V1, V2 and V3 cards in JSON, PNG and
CHARX files."""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest

from personae.characters.cards import ExportFormat, decode_character, encode_character
from personae.core.characters import Asset, Character
from tests.characters.card_fixtures import (
    CHARX_ASSETS,
    card_charx,
    card_png,
    chunk_card,
    png_chunk,
    png_texts,
    text_chunk,
    tiny_png,
    v1_card,
    v2_card,
    v3_card,
)

CARDS: dict[str, Callable[[], dict[str, Any]]] = {"v1": v1_card, "v2": v2_card, "v3": v3_card}
EXPORT_SAME_CONTAINER = {
    "json": ExportFormat.V3,
    "png": ExportFormat.PNG,
    "charx": ExportFormat.CHARX,
}


def file_for(spec: str, container: str) -> tuple[bytes, str]:
    card = CARDS[spec]()
    if container == "json":
        return json.dumps(card, indent=1).encode(), ".json"
    if container == "png":
        return card_png(card), ".png"
    return card_charx(card, CHARX_ASSETS), ".charx"


def content(character: Character) -> dict[str, Any]:
    """Everything but where it came from."""
    return character.model_dump(exclude={"source_format", "source_container"})


def test_every_v3_field_lands_on_the_model() -> None:
    c = decode_character(json.dumps(v3_card()).encode(), suffix=".json", source="wren.json")
    card = v3_card()["data"]
    assert (c.id, c.name, c.nickname, c.char_name) == (
        "wren-halloway",
        "Wren Halloway",
        "Wren",
        "Wren",
    )
    assert c.persona == card["description"]
    assert c.personality == card["personality"]
    assert c.scenario == card["scenario"]
    assert c.greetings == (card["first_mes"], *card["alternate_greetings"])
    assert c.group_only_greetings == ("Everyone, boots off the moss.",)
    assert c.example_dialogues == (
        "{{user}}: What grows in here?\n{{char}}: Mostly patience. Some pears.",
        "{{user}}: Is that tree humming?\n<BOT>: It is tuning itself. Ignore it.",
    )
    assert (c.system_prompt, c.post_history_instructions) == (
        card["system_prompt"],
        card["post_history_instructions"],
    )
    assert c.creator_notes == card["creator_notes"]
    assert c.creator_notes_multilingual == card["creator_notes_multilingual"]
    assert (c.creator, c.version, c.tags) == (
        card["creator"],
        card["character_version"],
        tuple(card["tags"]),
    )
    assert c.sources == tuple(card["source"])
    assert (c.creation_date, c.modification_date) == (1700000000, 1700003600.5)
    assert isinstance(c.creation_date, int)
    assert c.assets is not None
    assert c.assets[1] == Asset.model_validate(card["assets"][1])
    assert c.assets[1].model_extra == {"x_asset_extra": "kept"}
    assert c.character_book == card["character_book"]
    assert c.extensions == card["extensions"]
    assert c.world == "Tern Almanac"
    assert c.depth_prompt is not None
    assert (c.depth_prompt.depth, c.depth_prompt.prompt) == (2, "{{char}} never raises her voice.")
    assert c.card_extras.data == {"x_future_field": {"kept": True}}
    assert c.card_extras.top_level == {"x_top_level": "kept too"}
    assert (c.source_format, c.source_container) == ("v3", "json")


@pytest.mark.parametrize("spec", ["v2", "v3"])
def test_a_json_card_exports_to_exactly_the_same_json(spec: str) -> None:
    original = CARDS[spec]()
    c = decode_character(json.dumps(original).encode(), suffix=".json", source="card.json")
    exported = encode_character(c, ExportFormat(spec))
    assert json.loads(exported) == original


@pytest.mark.parametrize("spec", ["v1", "v2", "v3"])
@pytest.mark.parametrize("container", ["json", "png", "charx"])
def test_round_trip_keeps_every_field(spec: str, container: str) -> None:
    data, suffix = file_for(spec, container)
    first = decode_character(data, suffix=suffix, source=f"card{suffix}")
    assert first.source_format == spec
    assert first.source_container == container
    exported = encode_character(first, EXPORT_SAME_CONTAINER[container], original=data)
    second = decode_character(exported, suffix=suffix, source=f"again{suffix}")
    assert content(second) == content(first)
    assert second.source_container == container
    # Exports write V3 (the PNG's V3 chunk wins), except that JSON keeps a V2 card V2.
    assert second.source_format == "v3"


def test_a_v1_card_keeps_its_fields_and_unknown_keys_through_v2() -> None:
    original = v1_card()
    c = decode_character(json.dumps(original).encode(), suffix=".json", source="tom.json")
    assert c.source_format == "v1"
    assert c.greetings == ("Copper first, <USER>.",)
    exported = json.loads(encode_character(c, ExportFormat.V2))
    assert exported["spec"] == "chara_card_v2"
    for field in ("name", "description", "personality", "scenario", "first_mes", "mes_example"):
        assert exported["data"][field] == original[field]
    assert exported["avatar"] == "none"
    assert exported["chat"] == original["chat"]


def test_a_v2_png_keeps_its_exact_v2_card_in_the_chara_chunk() -> None:
    original = v2_card()
    c = decode_character(card_png(original), suffix=".png", source="wren.png")
    texts = png_texts(encode_character(c, ExportFormat.PNG, original=card_png(original)))
    assert chunk_card(texts["chara"]) == original
    assert chunk_card(texts["ccv3"])["spec"] == "chara_card_v3"


def test_a_v3_png_exports_the_same_v3_card() -> None:
    original = v3_card()
    c = decode_character(card_png(original), suffix=".png", source="wren.png")
    exported = encode_character(c, ExportFormat.PNG, original=card_png(original))
    assert chunk_card(png_texts(exported)["ccv3"]) == original


def test_a_png_export_keeps_the_image_and_other_chunks() -> None:
    source = card_png(v3_card())
    c = decode_character(source, suffix=".png", source="wren.png")
    exported = encode_character(c, ExportFormat.PNG, original=source)
    assert png_chunk(b"IDAT", zlib.compress(b"\x00\x80")) in exported
    assert exported.startswith(source[: source.index(b"IDAT") - 4])  # signature and IHDR


def test_a_charx_export_keeps_every_asset_byte_for_byte() -> None:
    source = card_charx(v3_card(), CHARX_ASSETS)
    c = decode_character(source, suffix=".charx", source="wren.charx")
    exported = encode_character(c, ExportFormat.CHARX, original=source)
    with zipfile.ZipFile(BytesIO(exported)) as archive:
        assert json.loads(archive.read("card.json")) == v3_card()
        for name, data in CHARX_ASSETS.items():
            assert archive.read(name) == data


def test_a_v2_copy_beside_a_v3_card_says_so_and_the_note_goes_on_import() -> None:
    c = decode_character(json.dumps(v3_card()).encode(), suffix=".json", source="wren.json")
    texts = png_texts(encode_character(c, ExportFormat.PNG))
    v2_copy = chunk_card(texts["chara"])
    assert v2_copy["data"]["creator_notes"].startswith("This character card is Character Card V3")
    assert "nickname" not in v2_copy["data"]
    # A reader that only finds the chara chunk gets the creator notes without the note.
    only_v2 = decode_character(tiny_png(text_chunk("chara", v2_copy)), suffix=".png", source="x")
    assert only_v2.creator_notes == c.creator_notes


def test_edited_examples_export_as_the_canonical_join() -> None:
    card = v3_card()
    card["data"]["mes_example"] = "  <start>\n\nA: hi\n\n<START>B: yo  "  # odd spacing, kept
    c = decode_character(json.dumps(card).encode(), suffix=".json", source="x.json")
    assert c.example_dialogues == ("A: hi", "B: yo")
    assert (
        json.loads(encode_character(c, ExportFormat.V3))["data"]["mes_example"]
        == (card["data"]["mes_example"])
    )
    edited = c.model_copy(update={"example_dialogues": ("A: hi",)})
    assert json.loads(encode_character(edited, ExportFormat.V3))["data"]["mes_example"] == (
        "<START>\nA: hi"
    )


def test_a_yaml_export_of_a_card_reads_back_equal_and_exports_the_same_card() -> None:
    c = decode_character(json.dumps(v3_card()).encode(), suffix=".json", source="wren.json")
    text = encode_character(c, ExportFormat.YAML)
    again = decode_character(text, suffix=".yaml", source="wren.yaml")
    assert content(again) == content(c)
    assert again.source_format == "yaml"
    assert json.loads(encode_character(again, ExportFormat.V3)) == v3_card()


def test_a_native_character_survives_a_card_round_trip() -> None:
    native = decode_character(
        b"id: navigator\nname: Aria\ndescription: A gallery line.\npersona: Calls you captain.\n"
        b"model: big\ngeneration: {temperature: 0.3}\ngreeting: Hi\n",
        suffix=".yaml",
        source="aria.yaml",
    )
    card = json.loads(encode_character(native, ExportFormat.V3))
    assert card["data"]["extensions"]["personae"] == {
        "id": "navigator",
        "model": "big",
        "generation": {"temperature": 0.3},
    }
    assert card["data"]["creator_notes"] == "A gallery line."
    back = decode_character(json.dumps(card).encode(), suffix=".json", source="aria.json")
    assert (back.id, back.model, back.generation) == ("navigator", "big", native.generation)
    assert (back.persona_text, back.summary, back.greetings) == (
        "Calls you captain.",
        "A gallery line.",
        ("Hi",),
    )
