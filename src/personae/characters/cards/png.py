"""PNG and APNG files as chunks, read and written with ``struct`` and ``zlib`` only.

A card lives in ``tEXt`` chunks: ``ccv3`` (a V3 card) and ``chara`` (V2, or V1 in old files),
each base64 of UTF-8 JSON. Reading checks the signature, every chunk's length and CRC, and
that the file ends with ``IEND``; writing keeps every other chunk (the image, an APNG's frames,
other metadata) byte for byte and puts the card chunks just before ``IEND``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NoReturn

from personae.errors import CharacterDefinitionError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")  # most preferred first
_MAX_CHUNK = 2**31 - 1  # the PNG spec's own limit on a chunk's length


@dataclass(frozen=True, slots=True)
class Chunk:
    type: bytes
    data: bytes

    def encode(self) -> bytes:
        crc = zlib.crc32(self.type + self.data)
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", crc)

    @property
    def text(self) -> tuple[str, str] | None:
        """(keyword, text) of a well-formed ``tEXt`` chunk (both Latin-1, per the PNG spec)."""
        if self.type != b"tEXt" or b"\x00" not in self.data:
            return None
        keyword, _, text = self.data.partition(b"\x00")
        return keyword.decode("latin-1"), text.decode("latin-1")


def text_chunk(keyword: str, text: str) -> Chunk:
    return Chunk(b"tEXt", keyword.encode("latin-1") + b"\x00" + text.encode("latin-1"))


def read_chunks(data: bytes, *, source: str) -> list[Chunk]:
    """Every chunk up to and including ``IEND``; bytes after it are ignored, as viewers do."""
    if not data.startswith(SIGNATURE):
        _fail(source, "not a PNG file (bad signature)")
    chunks: list[Chunk] = []
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            _fail(source, f"the PNG is truncated: it ends at byte {len(data)} without IEND")
        length, kind = struct.unpack_from(">I4s", data, pos)
        name = kind.decode("latin-1")
        if not kind.isalpha():
            _fail(source, f"corrupt PNG: invalid chunk type {name!r} at byte {pos}")
        if length > _MAX_CHUNK:
            _fail(source, f"corrupt PNG: the {name} chunk at byte {pos} claims {length} bytes")
        end = pos + 12 + length
        if end > len(data):
            _fail(
                source,
                f"the PNG is truncated: the {name} chunk at byte {pos} needs {length} bytes "
                f"but only {max(len(data) - pos - 12, 0)} follow",
            )
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            _fail(source, f"corrupt PNG: CRC mismatch in the {name} chunk at byte {pos}")
        chunks.append(Chunk(kind, body))
        pos = end
        if kind == b"IEND":
            break
    if chunks[0].type != b"IHDR":
        _fail(source, "corrupt PNG: the first chunk is not IHDR")
    return chunks


def card_texts(chunks: list[Chunk]) -> dict[str, str]:
    """The card chunks present, by lower-case keyword (the first of each wins)."""
    found: dict[str, str] = {}
    for chunk in chunks:
        text = chunk.text
        if text and text[0].lower() in CARD_KEYWORDS:
            found.setdefault(text[0].lower(), text[1])
    return found


def write_png(chunks: list[Chunk], texts: dict[str, str]) -> bytes:
    """The file with its card chunks replaced by ``texts`` (keyword -> text)."""
    kept = [c for c in chunks if not (c.text and c.text[0].lower() in CARD_KEYWORDS)]
    new = [text_chunk(keyword, text) for keyword, text in texts.items()]
    ordered = kept[:-1] + new + kept[-1:]  # the last chunk read is IEND
    return SIGNATURE + b"".join(chunk.encode() for chunk in ordered)


def _fail(source: str, message: str) -> NoReturn:
    raise CharacterDefinitionError(message, source=source)
