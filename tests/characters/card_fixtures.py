"""Original Character Cards that exercise every field of each spec, and helpers that build
card files the way other tools do (independently of Personae's own writers)."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_BOOK: dict[str, Any] = {
    "name": "Tern Almanac",
    "description": "What everyone in Tern knows about the Glasshouse.",
    "scan_depth": 4,
    "token_budget": 256,
    "recursive_scanning": False,
    "extensions": {"x_test/book": {"colour": "green"}},
    "entries": [
        {
            "keys": ["orchard", "glass tree"],
            "content": "@@depth 2\nThe glass trees of the orchard ring softly at dawn.",
            "extensions": {"x_test/entry": 1},
            "enabled": True,
            "insertion_order": 10,
            "case_sensitive": False,
            "use_regex": False,
            "constant": False,
            "name": "orchard",
            "priority": 5,
            "id": 1,
            "comment": "core lore",
            "selective": True,
            "secondary_keys": ["dawn"],
            "position": "before_char",
            "x_unknown_entry_key": "kept as is",
        },
        {
            "keys": ["^hail(stones?)?$"],
            "content": "Hail cracks a pane of the Glasshouse every winter.",
            "extensions": {},
            "enabled": False,
            "insertion_order": 20,
            "use_regex": True,
            "constant": True,
        },
    ],
}

_V2_DATA: dict[str, Any] = {
    "name": "Wren Halloway",
    "description": (
        "{{char}} tends the glass orchards of Tern, a town built on the ribs of an old "
        "airship. She speaks to plants more than to people and calls {{user}} 'sprout'."
    ),
    "personality": "patient, dry-humoured, suspicious of brass polish",
    "scenario": "{{user}} shelters in the Glasshouse during a hailstorm.",
    "first_mes": "Mind the seedlings, {{user}}. The blue ones bite.",
    "mes_example": (
        "<START>\n{{user}}: What grows in here?\n{{char}}: Mostly patience. Some pears.\n"
        "<START>\n{{user}}: Is that tree humming?\n<BOT>: It is tuning itself. Ignore it."
    ),
    "creator_notes": "Best with a slow, cosy pace. SENTINEL-CREATOR-NOTES",
    "system_prompt": "{{original}} Write in the present tense.",
    "post_history_instructions": "Keep {{char}}'s replies under eighty words.",
    "alternate_greetings": [
        "The hail is loud tonight. Tea, {{user}}?",
        "You're dripping on my ferns, sprout.",
    ],
    "character_book": _BOOK,
    "tags": ["botany", "SENTINEL-TAG"],
    "creator": "SENTINEL-CREATOR",
    "character_version": "SENTINEL-VERSION-2.1",
    "extensions": {
        "talkativeness": "0.6",
        "fav": False,
        "world": "Tern Almanac",
        "depth_prompt": {
            "prompt": "{{char}} never raises her voice.",
            "depth": 2,
            "role": "system",
        },
        "x_test/unknown": {"nested": [1, 2.5, None, "three", {"deep": True}]},
    },
}

_V3_ONLY: dict[str, Any] = {
    "group_only_greetings": ["Everyone, boots off the moss."],
    "assets": [
        {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
        {
            "type": "background",
            "uri": "embeded://assets/background/images/hail.png",
            "name": "hail",
            "ext": "png",
            "x_asset_extra": "kept",
        },
    ],
    "nickname": "Wren",
    "creator_notes_multilingual": {"en": "Best with a slow pace.", "fr": "Rythme lent."},
    "source": ["https://example.invalid/cards/wren", "personae:test"],
    "creation_date": 1700000000,
    "modification_date": 1700003600.5,
}


def v3_card() -> dict[str, Any]:
    data = {**_V2_DATA, **_V3_ONLY, "x_future_field": {"kept": True}}
    return {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": json.loads(json.dumps(data)),
        "x_top_level": "kept too",
    }


def v2_card() -> dict[str, Any]:
    data = json.loads(json.dumps({**_V2_DATA, "x_future_field": 7}))
    # As SillyTavern writes V2: the V1 fields repeated beside ``data``, plus its own keys.
    mirrors = {k: data[k] for k in ("name", "description", "personality", "scenario")}
    mirrors |= {k: data[k] for k in ("first_mes", "mes_example")}
    return {
        **mirrors,
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": data,
        "avatar": "none",
        "create_date": "2023-11-14 @10h 13m 20s",
    }


def v1_card() -> dict[str, Any]:
    return {
        "name": "Old Tom Pike",
        "description": "{{char}} rows the ferry across the Sallow for a copper a head.",
        "personality": "gloomy, honest",
        "scenario": "{{user}} needs to cross at night.",
        "first_mes": "Copper first, <USER>.",
        "mes_example": "<START>\n<USER>: Is it deep?\n<BOT>: Deep enough.",
        "avatar": "none",
        "chat": "Old Tom Pike - 2023-5-1 @12h",
    }


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png(extra_chunks: bytes = b"") -> bytes:
    """A 1x1 grey PNG, written by hand."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80")
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + extra_chunks
        + png_chunk(b"IEND", b"")
    )


def text_chunk(keyword: str, card: object) -> bytes:
    encoded = base64.b64encode(json.dumps(card).encode("utf-8"))
    return png_chunk(b"tEXt", keyword.encode() + b"\x00" + encoded)


def card_png(card: dict[str, Any]) -> bytes:
    """A PNG as other tools write one: ``ccv3`` for V3 (plus a ``chara`` copy), else
    ``chara``."""
    if card.get("spec") == "chara_card_v3":
        return tiny_png(text_chunk("chara", {"spec": "chara_card_v2"}) + text_chunk("ccv3", card))
    return tiny_png(text_chunk("chara", card))


def card_charx(card: dict[str, Any], assets: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card))
        for name, content in (assets or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


CHARX_ASSETS = {
    "assets/background/images/hail.png": tiny_png(),
    "x_meta/personae-test.json": b'{"app": "data"}',
}


def png_texts(data: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG, read the way the PNG spec describes (signature, then
    length / type / data / CRC records up to IEND), independently of Personae's reader."""
    assert data[:8] == PNG_SIGNATURE
    texts: dict[str, str] = {}
    pos, kinds = 8, []
    while True:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"tEXt":
            keyword, text = body.split(b"\x00", 1)
            assert keyword.decode("latin-1") not in texts, "one chunk per keyword"
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        pos += 12 + length
        if kind == b"IEND":
            break
    assert kinds[0] == b"IHDR"
    assert pos == len(data), "nothing after IEND"
    return texts


def chunk_card(text: str) -> Any:
    return json.loads(base64.b64decode(text, validate=True).decode("utf-8"))
