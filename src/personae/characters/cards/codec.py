"""Character files as bytes, to and from ``Character``: the one entry point for every format.

Reading picks the format from the file's suffix (``.yaml``/``.yml``, ``.json``, ``.png``/
``.apng``, ``.charx``); a PNG's ``ccv3`` chunk wins over its ``chara`` chunk. Writing a PNG
puts both in, as the community's tools do: ``chara`` as a V2 card for older readers and
``ccv3`` as the V3 card. Nothing here touches the file system: bytes in, bytes out.
"""

from __future__ import annotations

import enum
import json
from typing import Any

from personae.characters.cards import charx, png
from personae.characters.cards.jsontext import decode_base64, decode_json, encode_base64_json
from personae.characters.cards.limits import MAX_BYTES_BY_SUFFIX
from personae.characters.cards.mapping import card_to_character, character_to_card, v2_losses
from personae.characters.cards.placeholder import placeholder_png
from personae.characters.native import dump_character_yaml
from personae.core.characters import Character, Container, parse_character_yaml
from personae.errors import CharacterDefinitionError

CONTAINERS: dict[str, Container] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".png": "png",
    ".apng": "png",
    ".charx": "charx",
}
# The V3 spec asks a V2 copy written beside a V3 card to say so; it is taken out on import.
BACKFILL_NOTE = (
    "This character card is Character Card V3, but it is loaded as a Character Card V2. "
    "Please use a Character Card V3 compatible application to use this character card properly."
)


class ExportFormat(enum.StrEnum):
    V2 = "v2"  # JSON
    V3 = "v3"  # JSON
    PNG = "png"
    CHARX = "charx"
    YAML = "yaml"


def decode_character(data: bytes, *, suffix: str, source: str) -> Character:
    """Parse one character file's bytes; ``source`` names it in errors."""
    suffix = suffix.lower()
    container = CONTAINERS.get(suffix)
    if container is None:
        raise CharacterDefinitionError(f"unknown kind of file {suffix!r}", source=source)
    limit = MAX_BYTES_BY_SUFFIX[suffix]
    if len(data) > limit:
        raise CharacterDefinitionError(
            f"the file has {len(data)} bytes; the limit is {limit}", source=source
        )
    if container == "yaml":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CharacterDefinitionError("the file is not UTF-8 text", source=source) from exc
        return parse_character_yaml(text, source=source)
    if container == "json":
        card = decode_json(data, source=source)
    elif container == "png":
        card = _png_card(data, source)
    else:
        raw = charx.read_card_json(data, source=source)
        card = decode_json(raw, source=source, what=charx.CARD_ENTRY)
    return card_to_character(card, source=source, container=container)


def encode_character(
    character: Character,
    fmt: ExportFormat,
    *,
    original: bytes | None = None,
    image: bytes | None = None,
) -> bytes:
    """A character as a file in ``fmt``. ``original`` is the file it was read from (a PNG
    keeps its image, a CHARX its assets); ``image`` is a PNG to put the card on instead."""
    if fmt is ExportFormat.YAML:
        return dump_character_yaml(character).encode("utf-8")
    if fmt in (ExportFormat.V2, ExportFormat.V3):
        return _json_bytes(character_to_card(character, "v2" if fmt is ExportFormat.V2 else "v3"))
    kept = original if original is not None else b""
    if fmt is ExportFormat.CHARX:
        assets = []
        if kept and character.source_container == "charx":
            assets = charx.read_assets(kept, source="the original")
        card = _json_bytes(character_to_card(character, "v3"))
        return charx.write_charx(card, assets)
    base = image
    if base is None and kept and character.source_container == "png":
        base = kept
    if base is None and kept and character.source_container == "charx":
        base = charx_icon(character, kept)
    if base is None:
        base = placeholder_png(character.name)
    chunks = png.read_chunks(base, source="the image")
    texts = {
        "chara": encode_base64_json(_backfilled_v2(character)),
        "ccv3": encode_base64_json(character_to_card(character, "v3")),
    }
    return png.write_png(chunks, texts)


def _png_card(data: bytes, source: str) -> object:
    texts = png.card_texts(png.read_chunks(data, source=source))
    for keyword in png.CARD_KEYWORDS:
        if keyword in texts:
            what = f"the {keyword} chunk"
            raw = decode_base64(texts[keyword], source=source, what=what)
            card = decode_json(raw, source=source, what=what)
            return card if keyword == "ccv3" else _strip_backfill_note(card)
    raise CharacterDefinitionError(
        "the PNG holds no character card (no 'ccv3' or 'chara' tEXt chunk)", source=source
    )


def _backfilled_v2(character: Character) -> dict[str, Any]:
    card = character_to_card(character, "v2")
    if v2_losses(character):
        data = card["data"]
        data["creator_notes"] = f"{BACKFILL_NOTE}\n\n{data['creator_notes']}".rstrip()
    return card


def _strip_backfill_note(card: object) -> object:
    if not isinstance(card, dict) or not isinstance(card.get("data"), dict):
        return card
    notes = card["data"].get("creator_notes")
    if not isinstance(notes, str) or not notes.startswith(BACKFILL_NOTE):
        return card
    data = {**card["data"], "creator_notes": notes.removeprefix(BACKFILL_NOTE).lstrip("\n")}
    return {**card, "data": data}


def charx_icon(character: Character, original: bytes) -> bytes | None:
    # The card's main icon, when it is a PNG inside the CHARX, makes the PNG's image.
    for asset in character.assets or ():
        if asset.type == "icon" and asset.name == "main" and asset.uri.startswith("embeded://"):
            path = asset.uri.removeprefix("embeded://")
            for name, content in charx.read_assets(original, source="the original"):
                if name == path and content.startswith(png.SIGNATURE):
                    return content
    return None


def _json_bytes(card: dict[str, Any]) -> bytes:
    return (json.dumps(card, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
