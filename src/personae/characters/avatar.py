"""A character's avatar for the gallery: the card's own picture (a PNG card's image, a CHARX's
main icon), else the generated placeholder, as a small WebP thumbnail.

Cards shared by the community are often PNGs of a megabyte or more and carry the whole card in
text chunks; the thumbnail is a few kilobytes, keeps the page light and carries no card text.
Pillow decodes: a picture that is not one, or too big to decode safely, gives the placeholder.
"""

from __future__ import annotations

import io

import structlog
from PIL import Image, UnidentifiedImageError

from personae.characters.cards.codec import charx_icon
from personae.characters.cards.placeholder import placeholder_png
from personae.core.characters import Character

log = structlog.get_logger(__name__)

SIDE = 128  # pixels: twice the largest size the pages show, for high-density screens
MAX_PIXELS = 40_000_000  # a larger picture is refused before it is decoded (decompression bombs)
MEDIA_TYPE = "image/webp"


def card_picture(character: Character, original: bytes | None) -> bytes | None:
    """The picture the card file itself carries, if any."""
    if not original:
        return None
    if character.source_container == "png":
        return original
    if character.source_container == "charx":
        return charx_icon(character, original)
    return None


def avatar(character: Character, original: bytes | None) -> bytes:
    """The WebP thumbnail of the card's picture, or of the placeholder when it has none."""
    picture = card_picture(character, original)
    if picture is not None:
        try:
            return thumbnail(picture)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            log.warning("avatar not decodable", character=character.id, error=str(exc))
    return thumbnail(placeholder_png(character.name))


def thumbnail(picture: bytes, side: int = SIDE) -> bytes:
    """Scaled to fit ``side`` x ``side`` (never enlarged), first frame of an animation."""
    with Image.open(io.BytesIO(picture)) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"the picture has {width}x{height} pixels; at most {MAX_PIXELS}")
        image.seek(0)
        frame = image.convert("RGBA")
    frame.thumbnail((side, side))
    out = io.BytesIO()
    frame.save(out, format="WEBP", quality=80, method=4)
    return out.getvalue()
