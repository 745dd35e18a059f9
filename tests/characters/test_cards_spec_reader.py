"""Cards written by Personae, read by a reader that follows the specs literally and shares no
code with Personae's own reader (the PNG chunks are parsed here, by hand)."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from typing import Any

from personae.characters.cards import ExportFormat, decode_character, encode_character
from personae.core.characters import Character
from tests.characters.card_fixtures import CHARX_ASSETS, card_charx, chunk_card, png_texts, v3_card

V2_STRINGS = (
    "name",
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
)


def assert_v2_shape(card: dict[str, Any]) -> None:
    """The TavernCardV2 type of the V2 spec, field by field."""
    assert card["spec"] == "chara_card_v2"
    assert card["spec_version"] == "2.0"
    data = card["data"]
    for field in V2_STRINGS:
        assert isinstance(data[field], str), field
    assert all(isinstance(g, str) for g in data["alternate_greetings"])
    assert all(isinstance(t, str) for t in data["tags"])
    assert isinstance(data["extensions"], dict)
    book = data.get("character_book")
    if book is not None:
        assert isinstance(book["extensions"], dict)
        for entry in book["entries"]:
            assert isinstance(entry["keys"], list)
            assert isinstance(entry["content"], str)
            assert isinstance(entry["enabled"], bool)
            assert isinstance(entry["insertion_order"], int | float)


def assert_v3_shape(card: dict[str, Any]) -> None:
    """The CharacterCardV3 interface of the V3 spec."""
    assert card["spec"] == "chara_card_v3"
    assert card["spec_version"] == "3.0"
    data = card["data"]
    for field in V2_STRINGS:
        assert isinstance(data[field], str), field
    assert isinstance(data["group_only_greetings"], list)  # required in V3
    for asset in data.get("assets", []):
        assert {"type", "uri", "name", "ext"} <= set(asset)
    assert (
        sum(1 for a in data.get("assets", []) if a["type"] == "icon" and a["name"] == "main") <= 1
    )


def wren() -> Character:
    return decode_character(json.dumps(v3_card()).encode(), suffix=".json", source="wren.json")


def test_a_png_export_holds_a_v2_chara_and_a_v3_ccv3_chunk() -> None:
    texts = png_texts(encode_character(wren(), ExportFormat.PNG))
    assert set(texts) == {"chara", "ccv3"}
    v2, v3 = chunk_card(texts["chara"]), chunk_card(texts["ccv3"])
    assert_v2_shape(v2)
    assert_v3_shape(v3)
    assert v3 == v3_card()
    assert v2["data"]["name"] == v3["data"]["name"] == "Wren Halloway"
    assert v2["data"]["first_mes"] == v3["data"]["first_mes"]
    assert v2["data"]["character_book"] == v3["data"]["character_book"]


def test_a_png_made_from_a_native_character_is_a_complete_card() -> None:
    native = decode_character(
        b"id: kit\nname: Kit\npersona: A fox.\ngreeting: Hello\n", suffix=".yaml", source="kit"
    )
    texts = png_texts(encode_character(native, ExportFormat.PNG))
    v2, v3 = chunk_card(texts["chara"]), chunk_card(texts["ccv3"])
    assert_v2_shape(v2)
    assert_v3_shape(v3)
    assert (v3["data"]["name"], v3["data"]["description"], v3["data"]["first_mes"]) == (
        "Kit",
        "A fox.",
        "Hello",
    )
    assert "personae" not in v3["data"]["extensions"]  # the id is the slug of the name


def test_a_charx_export_has_card_json_at_the_root_and_its_assets() -> None:
    source = card_charx(v3_card(), CHARX_ASSETS)
    c = decode_character(source, suffix=".charx", source="wren.charx")
    with zipfile.ZipFile(BytesIO(encode_character(c, ExportFormat.CHARX, original=source))) as z:
        assert z.namelist()[0] == "card.json"
        assert all(not info.flag_bits & 0x1 for info in z.infolist())  # not encrypted
        card = json.loads(z.read("card.json"))
        assert_v3_shape(card)
        for asset in card["data"]["assets"]:
            if asset["uri"].startswith("embeded://"):
                assert asset["uri"].removeprefix("embeded://") in z.namelist()


def test_json_exports_are_the_bare_card_objects() -> None:
    assert_v2_shape(json.loads(encode_character(wren(), ExportFormat.V2)))
    assert_v3_shape(json.loads(encode_character(wren(), ExportFormat.V3)))
