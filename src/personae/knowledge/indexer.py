"""Keeps a knowledge folder's documents in the memory store, chunk for chunk.

A document is read (in a thread: PDFs take CPU), chunked, and compared with the chunks the
store holds for it (``core.memory.knowledge.reconcile``): new chunks are embedded and added,
chunks no longer in the document are deleted, unchanged ones are left with their vectors.
A document that cannot be read keeps its old chunks and is logged. Chunks are embedded here
when the embedder answers, else stored pending for the embedding job.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import structlog

from personae.core.memory.items import MemoryItem, NewMemory, Partition
from personae.core.memory.knowledge import (
    Chunking,
    chunks_of,
    documents_of,
    plan_chunks,
    reconcile,
)
from personae.core.ports import Embedder, MemoryStore
from personae.knowledge.folder import Place, folder_of, partition_folders, place_of, scan
from personae.knowledge.readers import UnreadableDocument, document_text, read_document

log = structlog.get_logger(__name__)

#: Items read to compare a partition's stored chunks with its documents.
MAX_PARTITION_ITEMS = 1_000_000


@dataclass(slots=True)
class SyncReport:
    indexed: int = 0  # documents whose chunks changed
    unchanged: int = 0
    removed: int = 0  # documents gone from the folder
    failed: int = 0  # documents that could not be read (their old chunks stay)
    chunks_added: int = 0
    chunks_removed: int = 0

    def add(self, other: SyncReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class KnowledgeIndexer:
    def __init__(
        self,
        store: MemoryStore,
        root: Path,
        *,
        embedder: Embedder | None = None,
        chunking: Chunking = Chunking(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.root = root
        self._embedder = embedder
        self._chunking = chunking
        self._clock = clock
        #: The bytes' hash of each file as last indexed: an event for a file whose bytes did
        #: not change (a touch, a save without edits) reads nothing.
        self._indexed: dict[Path, str] = {}

    async def sync_all(self, also: Iterable[Partition] = ()) -> SyncReport:
        """Bring every document of the folder up to date, and drop the chunks of documents
        no longer there: in a partition folder that exists, one seen since start, or one of
        ``also`` (whose folder may be gone)."""
        files = await asyncio.to_thread(scan, self.root)
        folders = await asyncio.to_thread(partition_folders, self.root)
        seen = {place.partition for file in self._indexed if (place := place_of(self.root, file))}
        return await self._sync(files, folders | seen | set(also), whole=True)

    async def sync_files(self, files: Iterable[Path]) -> SyncReport:
        """Bring the given files up to date (a missing one: its chunks go)."""
        places = {f: p for f in files if (p := place_of(self.root, f)) is not None}
        return await self._sync(places, set(), whole=False)

    async def _sync(
        self, files: dict[Path, Place], partitions: set[Partition], *, whole: bool
    ) -> SyncReport:
        by_partition: dict[Partition, dict[str, Path]] = {p: {} for p in partitions}
        for file, place in files.items():
            by_partition.setdefault(place.partition, {})[place.path] = file
        report = SyncReport()
        for partition, documents in by_partition.items():
            report.add(await self._sync_partition(partition, documents, whole=whole))
        return report

    async def _sync_partition(
        self, partition: Partition, documents: dict[str, Path], *, whole: bool
    ) -> SyncReport:
        stored = await self.store.list_items(partition, limit=MAX_PARTITION_ITEMS)
        report = SyncReport()
        paths = set(documents)
        if whole:  # documents stored but no longer in the folder
            paths |= documents_of(stored)
        for path in sorted(paths):
            file = documents.get(path, folder_of(self.root, partition) / path)
            report.add(await self._sync_document(Place(partition, path), file, stored))
        return report

    async def _sync_document(
        self, place: Place, file: Path, stored: list[MemoryItem]
    ) -> SyncReport:
        mine = chunks_of(stored, place.path)
        try:
            data = await asyncio.to_thread(read_document, file)
            digest = hashlib.sha256(data).hexdigest()
            if self._indexed.get(file) == digest:
                return SyncReport(unchanged=1)
            text = await asyncio.to_thread(document_text, file.name, data)
        except FileNotFoundError:
            self._indexed.pop(file, None)
            if not mine:
                return SyncReport()
            removed = await self.store.delete(place.partition, [item.id for item in mine])
            log.info("knowledge: document removed", document=place.path, chunks=removed)
            return SyncReport(removed=1, chunks_removed=removed)
        except UnreadableDocument as exc:
            log.error(
                "knowledge: cannot read a document; its earlier chunks stay",
                document=str(file),
                error=str(exc),
                chunks_kept=len(mine),
            )
            return SyncReport(failed=1)
        changes = reconcile(mine, plan_chunks(place.path, text, self._chunking))
        if changes.changed:
            vectors = await self._embed([chunk.text for chunk in changes.add])
            now = self._clock()
            await self.store.add(
                [
                    NewMemory(place.partition, chunk.text, now, kind=chunk.ref.kind, embedding=v)
                    for chunk, v in zip(changes.add, vectors, strict=True)
                ]
            )
            await self.store.delete(place.partition, changes.remove)
            log.info(
                "knowledge: document indexed",
                document=place.path,
                character=place.partition.character_id,
                added=len(changes.add),
                removed=len(changes.remove),
                kept=changes.kept,
            )
        self._indexed[file] = digest
        if not changes.changed:
            return SyncReport(unchanged=1)
        return SyncReport(
            indexed=1, chunks_added=len(changes.add), chunks_removed=len(changes.remove)
        )

    async def _embed(self, texts: list[str]) -> list[tuple[float, ...] | None]:
        """The texts' vectors, or None for each (pending: the embedding job retries) when
        there is no embedder or it fails."""
        if self._embedder is None or self.store.space is None or not texts:
            return [None] * len(texts)
        try:
            vectors = await self._embedder.embed(texts)
        except Exception as exc:
            log.warning(
                "knowledge: embedder failed; chunks stored pending",
                error=f"{type(exc).__name__}: {exc}",
            )
            return [None] * len(texts)
        return [tuple(float(x) for x in vector) for vector in vectors]
