"""A small generated picture for a card that has no image of its own: a symmetric 5x5
pattern in a colour taken from the character's name, so each card is recognisable."""

from __future__ import annotations

import hashlib
import struct
import zlib

from personae.characters.cards.png import SIGNATURE, Chunk

GRID = 5
CELL = 16
MARGIN = 16


def placeholder_png(seed: str) -> bytes:
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    ink = bytes(64 + b % 160 for b in digest[:3])  # mid-tone: visible on light and dark
    paper = b"\xf2\xf2\xf2"
    bits = int.from_bytes(digest[3:7], "big")
    half = (GRID + 1) // 2
    on = [
        [bool(bits >> (y * half + min(x, GRID - 1 - x)) & 1) for x in range(GRID)]
        for y in range(GRID)
    ]
    size = GRID * CELL + 2 * MARGIN
    rows = []
    for py in range(size):
        row = bytearray(b"\x00")  # filter type 0: no filter
        for px in range(size):
            x, y = (px - MARGIN) // CELL, (py - MARGIN) // CELL
            inside = 0 <= x < GRID and 0 <= y < GRID and px >= MARGIN and py >= MARGIN
            row += ink if inside and on[y][x] else paper
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    chunks = [
        Chunk(b"IHDR", header),
        Chunk(b"IDAT", zlib.compress(b"".join(rows), 9)),
        Chunk(b"IEND", b""),
    ]
    return SIGNATURE + b"".join(chunk.encode() for chunk in chunks)
