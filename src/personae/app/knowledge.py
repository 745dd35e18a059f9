"""Knowledge documents in the runtime (``memory.knowledge_dir``, docs/memory.md): the
indexer over the memory store, its watcher under the supervisor, and what ``personae memory
reindex`` opens (the store in the embedder's space, with no server running)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from personae.app.database import open_stores, sqlite_database
from personae.core.memory.items import EmbeddingSpace, Partition
from personae.core.memory.knowledge import Chunking
from personae.core.memory.scope import private_partitions
from personae.core.ports import ConversationStore, Embedder, MemoryStore
from personae.errors import ConfigurationError, InvalidInput
from personae.knowledge.indexer import KnowledgeIndexer, SyncReport
from personae.knowledge.reembed import Progress, embed_pending, reembed_partition
from personae.settings import MemorySettings, Settings


def knowledge_indexer(
    config: MemorySettings, store: MemoryStore, embedder: Embedder | None
) -> KnowledgeIndexer | None:
    """The indexer of ``memory.knowledge_dir`` (created if missing), or None without one."""
    if config.knowledge_dir is None:
        return None
    if config.knowledge_overlap_words >= config.knowledge_chunk_words:
        raise ConfigurationError(
            "memory.knowledge_overlap_words must be below memory.knowledge_chunk_words"
        )
    config.knowledge_dir.mkdir(parents=True, exist_ok=True)
    chunking = Chunking(config.knowledge_chunk_words, config.knowledge_overlap_words)
    return KnowledgeIndexer(store, config.knowledge_dir, embedder=embedder, chunking=chunking)


@dataclass(frozen=True, slots=True)
class Reindexing:
    conversations: ConversationStore  # to find a user's partitions
    store: MemoryStore
    embedder: Embedder
    indexer: KnowledgeIndexer | None


@asynccontextmanager
async def open_reindexing(
    settings: Settings, embedder: Embedder | None
) -> AsyncIterator[Reindexing]:
    """The memory store in ``embedder``'s space (``app.memory.build_embedder``), with that
    embedder open."""
    if embedder is None:
        raise ConfigurationError("re-indexing needs an embedder (memory.embedder is none)")
    async with embedder:
        space = EmbeddingSpace(embedder.model_name, embedder.dimension)
        async with AsyncExitStack() as stack:
            database = await stack.enter_async_context(sqlite_database(settings))
            stores = await open_stores(settings, stack, database)
            store = stores.memory(space)
            await stack.enter_async_context(store)
            indexer = knowledge_indexer(settings.memory, store, embedder)
            yield Reindexing(stores.conversations, store, embedder, indexer)


@dataclass(frozen=True, slots=True)
class ReindexResult:
    documents: SyncReport | None  # None: no knowledge folder, or only a user's memory
    embedded: int


async def reindex(
    work: Reindexing,
    *,
    user: str | None = None,
    character: str | None = None,
    batch_size: int = 32,
    progress: Progress,
) -> ReindexResult:
    """Re-read the knowledge folder (unless only a user's memory is asked for), then embed:
    a user's memory (with ``character``, or with every character), one character's knowledge
    (``"*"``: the shared documents), or, with neither, every item without a vector from the
    current embedder (after a change of model, every item)."""
    documents = None
    if work.indexer is not None and user is None:
        # A character named: its documents go too if its whole folder was removed.
        also = [Partition.knowledge(character)] if character is not None else []
        documents = await work.indexer.sync_all(also)
    if user is not None:
        partitions = await private_partitions(work.conversations, user, character)
        if not partitions:
            raise InvalidInput(f"nothing is remembered of user {user!r}")
    elif character is not None:
        partitions = [Partition.knowledge(character)]
    else:
        embedded = await embed_pending(
            work.store, work.embedder, batch_size=batch_size, progress=progress
        )
        return ReindexResult(documents, embedded)
    embedded = 0
    for partition in partitions:
        embedded += await reembed_partition(
            work.store, work.embedder, partition, batch_size=batch_size, progress=progress
        )
    return ReindexResult(documents, embedded)
