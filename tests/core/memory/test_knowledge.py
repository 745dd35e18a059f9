"""Knowledge chunks as memory items: the reference their kind carries, the chunk plan of a
document, and the reconciliation that keeps unchanged chunks (and their vectors)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.knowledge import (
    Chunking,
    ChunkRef,
    chunks_of,
    content_hash,
    documents_of,
    partition_of,
    plan_chunks,
    reconcile,
)
from personae.errors import InvalidInput

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = Chunking(max_words=4, overlap_words=1)


def stored(partition: Partition, chunks: list[tuple[str, str]]) -> list[MemoryItem]:
    """Items as a store returns them: (id, kind)."""
    return [MemoryItem(i, partition, f"text {i}", kind, 0.5, WHEN) for i, kind in chunks]


def test_a_reference_round_trips_through_its_kind_even_with_colons_in_the_path() -> None:
    ref = ChunkRef("manuals/v2: draft.pdf", 7, content_hash("x"))
    assert ref.kind.startswith("doc:7:")
    assert ChunkRef.of_kind(ref.kind) == ref
    assert ref.citation == "manuals/v2: draft.pdf#7"


@pytest.mark.parametrize(
    "kind", ["message", "reply", "fact:name", "doc:", "doc:x:abc:a.txt", "doc:1::a.txt", "doc:1:a"]
)
def test_other_kinds_carry_no_reference(kind: str) -> None:
    assert ChunkRef.of_kind(kind) is None


def test_a_bad_reference_is_refused() -> None:
    with pytest.raises(InvalidInput):
        ChunkRef("", 0, "abc")
    with pytest.raises(InvalidInput):
        ChunkRef("a.txt", -1, "abc")


def test_a_document_is_planned_as_overlapping_chunks_with_their_hashes() -> None:
    chunks = plan_chunks("a.txt", "one two three four five six seven", SMALL)
    assert [c.text for c in chunks] == ["one two three four", "four five six seven"]
    assert [c.ref.index for c in chunks] == [0, 1]
    assert {c.ref.path for c in chunks} == {"a.txt"}
    assert chunks[0].ref.digest == content_hash("one two three four")
    assert plan_chunks("a.txt", "  \n ", SMALL) == []


def test_an_unchanged_document_changes_nothing() -> None:
    part = Partition.knowledge("aria")
    planned = plan_chunks("a.txt", "one two three four five six seven", SMALL)
    items = stored(part, [(f"m{c.ref.index}", c.ref.kind) for c in planned])
    changes = reconcile(items, planned)
    assert not changes.changed
    assert changes.kept == 2


def test_an_edit_at_the_end_keeps_the_first_chunks_and_replaces_the_last() -> None:
    part = Partition.knowledge("aria")
    before = plan_chunks("a.txt", "one two three four five six seven", SMALL)
    items = stored(part, [(f"m{c.ref.index}", c.ref.kind) for c in before])
    after = plan_chunks("a.txt", "one two three four five six SEVEN", SMALL)
    changes = reconcile(items, after)
    assert changes.kept == 1
    assert changes.remove == ["m1"]
    assert [c.text for c in changes.add] == ["four five six SEVEN"]


def test_a_shrunk_document_loses_its_tail_and_a_repeated_chunk_goes() -> None:
    part = Partition.knowledge("aria")
    before = plan_chunks("a.txt", "a b c d e f g h i j", SMALL)
    assert len(before) == 3
    items = stored(part, [(f"m{c.ref.index}", c.ref.kind) for c in before])
    items += stored(part, [("dup", before[0].ref.kind)])  # an interrupted re-index left it
    changes = reconcile(items, plan_chunks("a.txt", "a b c d e f g", SMALL))
    assert changes.add == []
    assert sorted(changes.remove) == ["dup", "m2"]


def test_a_document_s_chunks_are_told_apart_from_other_items() -> None:
    part = Partition.knowledge("aria")
    a = plan_chunks("a.txt", "alpha", SMALL)[0].ref.kind
    b = plan_chunks("b/c.md", "beta", SMALL)[0].ref.kind
    items = stored(part, [("1", a), ("2", b), ("3", "turn")])
    assert [i.id for i in chunks_of(items, "a.txt")] == ["1"]
    assert documents_of(items) == {"a.txt", "b/c.md"}


def test_folders_map_to_knowledge_partitions() -> None:
    assert partition_of("aria") == Partition.knowledge("aria")
    assert partition_of("_all") == Partition.knowledge()
    for bad in ("", "*"):
        with pytest.raises(InvalidInput):
            partition_of(bad)
