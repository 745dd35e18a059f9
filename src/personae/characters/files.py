"""Reading a character or lorebook file with its size checked first, so a huge file costs
nothing and every failure is a ``CharacterDefinitionError`` that names the file."""

from __future__ import annotations

from pathlib import Path

from personae.errors import CharacterDefinitionError


def read_limited(path: Path, limit: int) -> bytes:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise CharacterDefinitionError(
                f"the file has {size} bytes; the limit is {limit}", source=source
            )
        return path.read_bytes()
    except OSError as exc:
        raise CharacterDefinitionError(f"cannot read the file: {exc}", source=source) from exc
