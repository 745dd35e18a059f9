"""Every kind of bad character file is refused with an error that names the file and the
problem, and nothing of it is loaded."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
from pathlib import Path

import pytest

from personae.characters.cards import decode_character, limits
from personae.characters.loader import load_characters_dir
from personae.errors import CharacterDefinitionError
from tests.characters.card_fixtures import (
    card_charx,
    card_png,
    png_chunk,
    text_chunk,
    tiny_png,
    v2_card,
    v3_card,
)


def refused(data: bytes, suffix: str) -> str:
    with pytest.raises(CharacterDefinitionError) as caught:
        decode_character(data, suffix=suffix, source=f"bad{suffix}")
    assert caught.value.source == f"bad{suffix}"
    assert str(caught.value).startswith(f"bad{suffix}: ")
    return caught.value.message


def raw_text_chunk(keyword: str, text: bytes) -> bytes:
    return png_chunk(b"tEXt", keyword.encode() + b"\x00" + text)


# --- PNG -----------------------------------------------------------------------------------


def test_a_png_with_a_bad_signature() -> None:
    assert "bad signature" in refused(b"GIF89a" + card_png(v3_card())[6:], ".png")


def test_a_truncated_png() -> None:
    data = card_png(v3_card())
    assert "truncated" in refused(data[: len(data) // 2], ".png")
    assert "without IEND" in refused(data[:-12], ".png")  # cut exactly before IEND


def test_a_png_with_a_crc_mismatch() -> None:
    data = bytearray(card_png(v3_card()))
    at = data.index(b"ccv3") + 40  # inside the card chunk's text
    data[at] ^= 0x01
    assert "CRC mismatch in the tEXt chunk" in refused(bytes(data), ".png")


def test_a_png_with_an_invalid_chunk_type() -> None:
    bad = tiny_png()[:-12] + struct.pack(">I", 0) + b"\x00\x01\x02\x03" + b"\0\0\0\0"
    assert "invalid chunk type" in refused(bad, ".png")


def test_a_png_that_does_not_start_with_ihdr() -> None:
    data = tiny_png()
    ihdr_end = 8 + 12 + 13
    assert "not IHDR" in refused(data[:8] + data[ihdr_end:], ".png")


def test_a_png_without_a_card() -> None:
    other = raw_text_chunk("Comment", b"just a picture")
    assert "no character card" in refused(tiny_png(other), ".png")


def test_a_card_chunk_that_is_not_base64() -> None:
    message = refused(tiny_png(raw_text_chunk("ccv3", b"not base64 at all!")), ".png")
    assert "the ccv3 chunk is not valid base64" in message


def test_truncated_base64() -> None:
    text = base64.b64encode(json.dumps(v3_card()).encode())
    assert "not valid base64" in refused(tiny_png(raw_text_chunk("ccv3", text[:-3])), ".png")
    # Cut on a 4-character boundary the base64 is valid, and the JSON inside is cut short.
    message = refused(tiny_png(raw_text_chunk("ccv3", text[: len(text) // 8 * 4])), ".png")
    assert "the ccv3 chunk is not valid JSON (truncated?)" in message


def test_base64_of_bytes_that_are_not_utf8() -> None:
    text = base64.b64encode(b'{"name": "\xff\xfe"}')
    assert "the chara chunk is not UTF-8" in refused(
        tiny_png(raw_text_chunk("chara", text)), ".png"
    )


def test_a_broken_ccv3_chunk_is_an_error_even_beside_a_good_chara_chunk() -> None:
    chunks = text_chunk("chara", v2_card()) + raw_text_chunk("ccv3", b"%%%")
    assert "ccv3" in refused(tiny_png(chunks), ".png")


# --- JSON of the wrong shape ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "fragment"),
    [
        ([1, 2], "expected a JSON object"),
        ({"spec": "chara_card_v9", "data": {}}, "unsupported spec 'chara_card_v9'"),
        ({"spec": "lorebook_v3", "data": {"entries": []}}, "standalone lorebook"),
        ({"spec": "chara_card_v2", "data": "Wren"}, "'data' must be an object"),
        (
            {"spec": "chara_card_v2", "data": {"name": 7}},
            "data.name: Input should be a valid string",
        ),
        ({"spec": "chara_card_v3", "data": {"description": "x"}}, "data.name: Field required"),
        ({"spec": "chara_card_v2", "data": {"name": "W", "tags": "a,b"}}, "data.tags"),
        (
            {"spec": "chara_card_v3", "data": {"name": "W", "creation_date": "today"}},
            "creation_date",
        ),
        (
            {"spec": "chara_card_v3", "data": {"name": "W", "assets": [{"uri": "x"}]}},
            "assets.0.type",
        ),
        ({"spec": "chara_card_v3", "data": {"name": ""}}, "name: String should have at least 1"),
        ({"description": "a V1 card with no name"}, "name: Field required"),
        (
            {"spec": "chara_card_v2", "data": {"name": "W", "character_book": {"entries": [{}]}}},
            "character_book: Value error, entries.0.keys: Field required",
        ),
        (
            {"spec": "chara_card_v2", "data": {"name": "W", "extensions": {"depth_prompt": 3}}},
            "extensions.depth_prompt: expected an object",
        ),
        (
            {
                "spec": "chara_card_v2",
                "data": {"name": "W", "extensions": {"depth_prompt": {"prompt": "x", "depth": -1}}},
            },
            "depth_prompt.depth",
        ),
        (
            {
                "spec": "chara_card_v2",
                "data": {"name": "W", "extensions": {"personae": {"id": "Bad Id!"}}},
            },
            "extensions.personae.id: 'Bad Id!' is not a valid id",
        ),
        (
            {"spec": "chara_card_v2", "data": {"name": "W", "extensions": {"world": 3}}},
            "extensions.world",
        ),
    ],
)
def test_json_of_the_wrong_shape(card: object, fragment: str) -> None:
    assert fragment in refused(json.dumps(card).encode(), ".json")


def test_json_that_does_not_parse() -> None:
    assert "not valid JSON" in refused(b'{"spec": "chara_card_v2", "data": {', ".json")
    assert "not UTF-8" in refused(b'{"name": "\xff"}', ".json")
    assert "NaN is not a JSON number" in refused(b'{"name": "W", "x": NaN}', ".json")


def test_json_nested_too_deeply() -> None:
    deep = '{"name": "W", "x": ' + "[" * 200 + "]" * 200 + "}"
    assert "nests objects deeper than" in refused(deep.encode(), ".json")


# --- CHARX ------------------------------------------------------------------------------------


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def flagged_encrypted(data: bytes) -> bytes:
    """Sets the "encrypted" bit in every header (zipfile cannot write encrypted entries)."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        while at != -1:
            out[at + offset] |= 0x01
            at = out.find(signature, at + 4)
    return bytes(out)


CARD = json.dumps(v3_card()).encode()


def test_a_charx_that_is_not_a_zip() -> None:
    assert "not a valid CHARX (zip) file" in refused(b"PK\x03\x04 nonsense", ".charx")


def test_a_charx_without_card_json() -> None:
    assert "no card.json at its root" in refused(zip_of({"cards/card.json": CARD}), ".charx")


@pytest.mark.parametrize(
    "name", ["../evil.png", "assets/../../evil.png", "/etc/passwd", "C:/evil.png", "a\\..\\b"]
)
def test_a_charx_with_path_traversal(name: str) -> None:
    message = refused(zip_of({"card.json": CARD, name: b"x"}), ".charx")
    assert "unsafe path" in message


def test_a_charx_zip_bomb_by_ratio() -> None:
    bomb = zip_of({"card.json": CARD, "assets/other/zeros.bin": b"\x00" * (4 * 1024 * 1024)})
    assert len(bomb) < 100_000
    assert "zip bomb" in refused(bomb, ".charx")


def test_a_charx_zip_bomb_by_total_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("personae.characters.cards.charx.MAX_CHARX_UNCOMPRESSED", 50_000)
    data = zip_of({"card.json": CARD, "a.bin": bytes(range(256)) * 300})
    assert "unpacks to over 50000 bytes" in refused(data, ".charx")


def test_a_charx_with_too_many_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("personae.characters.cards.charx.MAX_CHARX_ENTRIES", 5)
    entries = {"card.json": CARD} | {f"assets/other/{i}.txt": b"x" for i in range(5)}
    assert "6 entries; the limit is 5" in refused(zip_of(entries), ".charx")


def test_an_encrypted_charx() -> None:
    assert "encrypted" in refused(flagged_encrypted(zip_of({"card.json": CARD})), ".charx")


def test_a_charx_with_a_huge_card_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("personae.characters.cards.charx.MAX_JSON_BYTES", 1000)
    assert "card.json' has" in refused(card_charx(v3_card()), ".charx")


def test_a_charx_with_a_corrupt_entry() -> None:
    data = bytearray(card_charx(v3_card()))
    at = data.index(b"card.json") + 30  # inside the compressed card
    data[at] ^= 0xFF
    assert "is corrupt" in refused(bytes(data), ".charx")


def test_a_charx_holding_a_name_twice() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", CARD)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("card.json", b"{}")
    assert "holds 'card.json' twice" in refused(buffer.getvalue(), ".charx")


# --- sizes and YAML -----------------------------------------------------------------------------


def test_huge_files_are_refused_before_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(limits.MAX_BYTES_BY_SUFFIX, ".png", 10_000)
    huge = tiny_png(png_chunk(b"zzZz", b"\x00" * 20_000))  # a big private chunk
    (tmp_path / "huge.png").write_bytes(huge)
    report = load_characters_dir(tmp_path)
    assert report.characters == []
    assert "the limit is 10000" in report.errors[0].message
    assert "the limit is 10000" in refused(huge, ".png")


def test_yaml_with_custom_tags_is_refused() -> None:
    message = refused(b"!!python/object/apply:os.system ['echo pwned']\n", ".yaml")
    assert "not valid YAML" in message


def test_yaml_cannot_claim_to_be_a_card() -> None:
    assert "set by the reader" in refused(b"id: a\nname: A\nsource_format: v3\n", ".yaml")


def test_yaml_extensions_must_be_json_data() -> None:
    assert "is not JSON data" in refused(
        b"id: a\nname: A\nextensions: {when: 2024-01-01}\n", ".yaml"
    )


def test_an_unknown_suffix() -> None:
    assert "unknown kind of file" in refused(b"", ".webp")


def test_nothing_of_a_broken_file_is_loaded(tmp_path: Path) -> None:
    good = v3_card()
    (tmp_path / "good.png").write_bytes(card_png(good))
    broken = bytearray(card_png(v2_card()))
    broken[-20] ^= 0xFF  # the last tEXt chunk's CRC
    (tmp_path / "broken.png").write_bytes(bytes(broken))
    (tmp_path / "bomb.charx").write_bytes(zip_of({"card.json": CARD, "../x": b""}))
    report = load_characters_dir(tmp_path)
    assert [c.id for c in report.characters] == ["wren-halloway"]
    assert {Path(e.source).name for e in report.errors} == {"broken.png", "bomb.charx"}


def test_a_charx_that_understates_a_size() -> None:
    # The directory says card.json is 100 bytes; it inflates to far more.
    out = bytearray(card_charx(v3_card()))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = out.find(signature)
        out[at + offset : at + offset + 4] = struct.pack("<I", 100)
    message = refused(bytes(out), ".charx")
    assert "card.json" in message
    assert "corrupt" in message or "larger than it declares" in message
