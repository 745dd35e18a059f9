"""Knowledge: operator documents attached to characters, as chunks in the memory store.

Each chunk is a memory item in a knowledge partition whose ``kind`` names where it came from:
``doc:<chunk index>:<content hash>:<document path>`` (``ChunkRef``). So a recalled chunk can
be cited without another lookup, and re-indexing a document compares what it would store
with what is stored (``reconcile``): a chunk whose index and hash are unchanged is kept with
its vector, so an unchanged file is never re-embedded and a shrunk one loses only its tail.

The folder layout (``partition_of``): ``<knowledge_dir>/<character id>/...`` for one
character, ``<knowledge_dir>/_all/...`` for every character.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from personae.core.memory.chunking import DEFAULT_MAX_WORDS, DEFAULT_OVERLAP_WORDS, chunk_words
from personae.core.memory.items import EVERY_CHARACTER, MemoryItem, Partition
from personae.errors import InvalidInput

KIND_PREFIX = "doc:"
#: The folder under the knowledge directory whose documents every character sees.
SHARED_FOLDER = "_all"
#: Hex digits of SHA-256 kept per chunk: 64 bits, ample to tell a chunk's versions apart.
HASH_DIGITS = 16


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where a chunk of knowledge came from: a document (its path under the partition's
    folder, ``/``-separated), the chunk's position in it and a hash of its text."""

    path: str
    index: int
    digest: str

    def __post_init__(self) -> None:
        if not self.path or self.index < 0 or not self.digest or ":" in self.digest:
            raise InvalidInput(f"a bad knowledge chunk reference: {self!r}")

    @property
    def kind(self) -> str:
        """The memory item kind that carries this reference (the path last: it may hold ':')."""
        return f"{KIND_PREFIX}{self.index}:{self.digest}:{self.path}"

    @property
    def citation(self) -> str:
        """How the prompt and the trace name the chunk: ``guide.pdf#3`` (chunks from 0)."""
        return f"{self.path}#{self.index}"

    @classmethod
    def of_kind(cls, kind: str) -> ChunkRef | None:
        """The reference a memory item kind carries; None for any other kind."""
        if not kind.startswith(KIND_PREFIX):
            return None
        parts = kind[len(KIND_PREFIX) :].split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or not parts[2]:
            return None
        index, digest, path = parts
        return cls(path, int(index), digest)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_DIGITS]


@dataclass(frozen=True, slots=True)
class PlannedChunk:
    ref: ChunkRef
    text: str


@dataclass(frozen=True, slots=True)
class Chunking:
    max_words: int = DEFAULT_MAX_WORDS
    overlap_words: int = DEFAULT_OVERLAP_WORDS


def plan_chunks(path: str, text: str, chunking: Chunking = Chunking()) -> list[PlannedChunk]:
    """The chunks ``text`` (a document's extracted text) is stored as."""
    return [
        PlannedChunk(ChunkRef(path, chunk.index, content_hash(chunk.text)), chunk.text)
        for chunk in chunk_words(text, max_words=chunking.max_words, overlap=chunking.overlap_words)
    ]


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to change so the store holds exactly a document's planned chunks."""

    add: list[PlannedChunk] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)  # item ids
    kept: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove)


def reconcile(stored: Sequence[MemoryItem], planned: Sequence[PlannedChunk]) -> Reconciliation:
    """Compare a document's stored chunk items with its planned chunks: same index and hash
    is kept (with its vector); the rest of the stored ones go, the rest of the planned ones
    are added. A repeated stored chunk (left by an interrupted re-index) goes too."""
    wanted = {chunk.ref.kind: chunk for chunk in planned}
    remove: list[str] = []
    kept: set[str] = set()
    for item in stored:
        if item.kind in wanted and item.kind not in kept:
            kept.add(item.kind)
        else:
            remove.append(item.id)
    add = [chunk for kind, chunk in wanted.items() if kind not in kept]
    return Reconciliation(add, remove, len(kept))


def chunks_of(items: Sequence[MemoryItem], path: str) -> list[MemoryItem]:
    """The items that are chunks of the document at ``path``."""
    return [item for item in items if (ref := ChunkRef.of_kind(item.kind)) and ref.path == path]


def documents_of(items: Sequence[MemoryItem]) -> set[str]:
    """The document paths the chunk items come from."""
    return {ref.path for item in items if (ref := ChunkRef.of_kind(item.kind))}


def partition_of(folder: str) -> Partition:
    """The knowledge partition of a folder directly under the knowledge directory."""
    if folder == SHARED_FOLDER:
        return Partition.knowledge(EVERY_CHARACTER)
    if not folder or folder == EVERY_CHARACTER:
        raise InvalidInput(f"{folder!r} does not name a character's knowledge folder")
    return Partition.knowledge(folder)
