"""CHARX files: a zip with the V3 card as ``card.json`` at its root and the card's assets
beside it (referenced as ``embeded://path``).

A zip can be a bomb or carry ``../`` names, so the whole directory is checked before anything
is decompressed: number of entries, safe relative names, no encryption, total uncompressed
size and compression ratio (``limits``); each read is then capped again, because the sizes a
zip declares can lie.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable
from typing import NoReturn

from personae.characters.cards.limits import (
    CHARX_RATIO_FLOOR,
    MAX_CHARX_ENTRIES,
    MAX_CHARX_RATIO,
    MAX_CHARX_UNCOMPRESSED,
    MAX_JSON_BYTES,
)
from personae.errors import CharacterDefinitionError

CARD_ENTRY = "card.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip epoch: the same card gives the same bytes
_DRIVE = re.compile(r"^[A-Za-z]:")


def read_card_json(data: bytes, *, source: str) -> bytes:
    """The bytes of ``card.json`` from a CHARX file, after checking the whole archive."""
    with _open(data, source) as archive:
        infos = _checked(archive, source)
        card = infos.get(CARD_ENTRY)
        if card is None:
            _fail(source, f"the CHARX has no {CARD_ENTRY} at its root")
        return _read(archive, card, MAX_JSON_BYTES, source)


def read_assets(data: bytes, *, source: str) -> list[tuple[str, bytes]]:
    """Every entry except ``card.json`` (assets, application data), for re-export."""
    with _open(data, source) as archive:
        infos = _checked(archive, source)
        return [
            (name, _read(archive, info, MAX_CHARX_UNCOMPRESSED, source))
            for name, info in infos.items()
            if name != CARD_ENTRY and not info.is_dir()
        ]


def write_charx(card_json: bytes, entries: Iterable[tuple[str, bytes]] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in [(CARD_ENTRY, card_json), *entries]:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def unsafe_name(name: str) -> bool:
    """Absolute, drive-letter, backslash or ``..`` names could escape a folder if extracted."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        return True
    return any(part == ".." for part in name.split("/"))


def _open(data: bytes, source: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        _fail(source, f"not a valid CHARX (zip) file: {exc}")


def _checked(archive: zipfile.ZipFile, source: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_CHARX_ENTRIES:
        _fail(source, f"the CHARX has {len(infos)} entries; the limit is {MAX_CHARX_ENTRIES}")
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if unsafe_name(name):
            _fail(source, f"the CHARX entry {name!r} has an unsafe path")
        if name in by_name:
            _fail(source, f"the CHARX holds {name!r} twice")
        if info.flag_bits & 0x1:
            _fail(source, f"the CHARX entry {name!r} is encrypted")
        total += info.file_size
        if total > MAX_CHARX_UNCOMPRESSED:
            _fail(source, f"the CHARX unpacks to over {MAX_CHARX_UNCOMPRESSED} bytes (zip bomb?)")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > CHARX_RATIO_FLOOR and ratio > MAX_CHARX_RATIO:
            _fail(
                source,
                f"the CHARX entry {name!r} compresses {ratio:.0f}:1; the limit is "
                f"{MAX_CHARX_RATIO}:1 (zip bomb?)",
            )
        by_name[name] = info
    return by_name


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, source: str) -> bytes:
    if info.file_size > limit:
        _fail(
            source,
            f"the CHARX entry {info.filename!r} has {info.file_size} bytes; the limit is {limit}",
        )
    try:
        with archive.open(info) as entry:
            # One byte more than declared: a zip that lies about a size is caught, not obeyed.
            content = entry.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        _fail(source, f"the CHARX entry {info.filename!r} is corrupt: {exc}")
    if len(content) > info.file_size:
        _fail(source, f"the CHARX entry {info.filename!r} is larger than it declares")
    return content


def _fail(source: str, message: str) -> NoReturn:
    raise CharacterDefinitionError(message, source=source)
