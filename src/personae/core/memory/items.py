"""What long-term memory holds: items in partitions, each with its vector space.

A partition is whose memory an item is: a user's private memory with one character, or a
character's knowledge (``user_id`` empty; ``character_id`` ``"*"`` for every character).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from personae.errors import InvalidInput

EVERY_CHARACTER = "*"


class Scope(enum.StrEnum):
    PRIVATE = "private"  # what a user told a character; never shown to another user
    KNOWLEDGE = "knowledge"  # documents an operator attached to characters


@dataclass(frozen=True, slots=True)
class Partition:
    scope: Scope
    user_id: str
    character_id: str

    def __post_init__(self) -> None:
        if not self.character_id or "\x00" in self.character_id + self.user_id:
            raise InvalidInput("a memory partition needs a character id without NUL characters")
        if (self.scope is Scope.PRIVATE) != bool(self.user_id):
            raise InvalidInput("private memory needs a user id; knowledge has none")

    @classmethod
    def private(cls, user_id: str, character_id: str) -> Partition:
        return cls(Scope.PRIVATE, user_id, character_id)

    @classmethod
    def knowledge(cls, character_id: str = EVERY_CHARACTER) -> Partition:
        return cls(Scope.KNOWLEDGE, "", character_id)

    @property
    def key(self) -> str:
        """One string naming the partition; NUL cannot occur inside the ids."""
        return f"{self.scope}\x00{self.user_id}\x00{self.character_id}"


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    """The embedder a vector came from: vectors of different spaces are never compared."""

    model_name: str
    dimension: int

    def __post_init__(self) -> None:
        if not self.model_name or self.dimension < 1:
            raise InvalidInput("an embedding space needs a model name and a dimension >= 1")

    def check(self, vector: tuple[float, ...]) -> None:
        """``InvalidInput`` unless ``vector`` is a finite vector of this space."""
        if len(vector) != self.dimension:
            raise InvalidInput(
                f"a vector of {self.model_name} has {self.dimension} dimensions, got {len(vector)}"
            )
        if not all(math.isfinite(x) for x in vector):
            raise InvalidInput("a vector holds a NaN or an infinity")


@dataclass(frozen=True, slots=True)
class NewMemory:
    """An item to store. ``embedding``, if given, is in the store's embedding space; without
    it the item is stored as pending (found by full text until a job embeds it)."""

    partition: Partition
    text: str
    created_at: datetime
    kind: str = "turn"
    importance: float = 0.5
    source_message_ids: tuple[str, ...] = ()
    embedding: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise InvalidInput("an empty or whitespace-only text is not remembered")
        if not self.kind:
            raise InvalidInput("a memory item needs a kind")
        if not 0.0 <= self.importance <= 1.0:  # also refuses NaN
            raise InvalidInput(f"importance must be within 0..1, got {self.importance}")
        if self.created_at.tzinfo is None:
            raise InvalidInput("created_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class MemoryItem:
    id: str
    partition: Partition
    text: str
    kind: str
    importance: float
    created_at: datetime
    source_message_ids: tuple[str, ...] = ()
    #: The space of its stored vector; None while it waits to be embedded.
    embedding_space: EmbeddingSpace | None = None


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """An item recalled, with its fused score and where each ranking placed it (1 = first)."""

    item: MemoryItem
    score: float
    fulltext_rank: int | None = None
    vector_rank: int | None = None
