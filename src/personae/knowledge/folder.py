"""Where documents live: ``<root>/<character id>/...`` is that character's knowledge,
``<root>/_all/...`` every character's (subfolders allowed); a file directly in the root
belongs to nobody and is skipped."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from personae.core.memory.items import Partition
from personae.core.memory.knowledge import SHARED_FOLDER, partition_of
from personae.errors import InvalidInput
from personae.knowledge.readers import is_document


@dataclass(frozen=True, slots=True)
class Place:
    """A document's partition and its path there (``/``-separated, from the partition's
    folder): the name its chunks are cited by."""

    partition: Partition
    path: str


def place_of(root: Path, file: Path) -> Place | None:
    """Where ``file`` (under ``root``) belongs, or None for a file the folder does not index."""
    try:
        parts = file.relative_to(root).parts
    except ValueError:
        return None
    if len(parts) < 2 or not is_document(file) or any(p.startswith(".") for p in parts):
        return None
    try:
        partition = partition_of(parts[0])
    except InvalidInput:  # a folder that names no character ("*")
        return None
    return Place(partition, "/".join(parts[1:]))


def scan(root: Path) -> dict[Path, Place]:
    """Every document under ``root``, by file."""
    found: dict[Path, Place] = {}
    for file in sorted(root.rglob("*")):
        place = place_of(root, file) if file.is_file() else None
        if place is not None:
            found[file] = place
    return found


def partition_folders(root: Path) -> set[Partition]:
    """The partitions of the folders directly under ``root`` (empty ones too: their
    documents were all deleted)."""
    found: set[Partition] = set()
    for folder in root.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            with contextlib.suppress(InvalidInput):
                found.add(partition_of(folder.name))
    return found


def folder_of(root: Path, partition: Partition) -> Path:
    shared = partition == Partition.knowledge()
    return root / (SHARED_FOLDER if shared else partition.character_id)
