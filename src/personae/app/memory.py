"""Long-term memory in the runtime (``memory:`` settings, docs/memory.md): the embedder, the
SQLite memory store beside the conversation store, the embedding job under the supervisor
and the memory stage the chat service calls each turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import structlog

from personae.core.memory.indexing import EmbeddingJob, IndexingSettings
from personae.core.memory.items import EmbeddingSpace
from personae.core.memory.stage import MemoryBudget, MemoryStage
from personae.core.ports import AuditLog, Embedder
from personae.core.supervisor import Supervisor
from personae.errors import ConfigurationError
from personae.settings import MemorySettings, Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.audit import SqliteAuditLog
from personae.storage.sqlite.memory import SqliteMemoryStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Memory:
    store: SqliteMemoryStore
    stage: MemoryStage
    embedder: Embedder | None  # None: full-text recall only
    job: EmbeddingJob | None


def build_embedder(settings: MemorySettings) -> Embedder | None:
    """The configured embedder, not yet open; None for full text only."""
    if settings.embedder == "none":
        return None
    if settings.embedder == "openai":
        from personae.embedders.openai_compat import OpenAICompatEmbedder

        if not settings.embedder_base_url or not settings.embedder_model:
            raise ConfigurationError(
                "memory.embedder openai needs memory.embedder_base_url and memory.embedder_model"
            )
        key = settings.embedder_api_key
        return OpenAICompatEmbedder(
            model=settings.embedder_model,
            base_url=settings.embedder_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            batch_size=settings.batch_size,
        )
    try:
        from personae.embedders.sentence_transformers import (
            SentenceTransformerEmbedder,
            packaged_model_path,
        )

        packaged_model_path()  # ConfigurationError without the 'local' extra
    except (ImportError, ConfigurationError) as exc:
        log.warning("memory: no packaged embedder, full-text recall only", reason=str(exc))
        return None
    return SentenceTransformerEmbedder(batch_size=settings.batch_size)


async def open_memory(
    settings: Settings, stack: AsyncExitStack, supervisor: Supervisor
) -> Memory | None:
    """Open memory on the runtime's stack (None when ``memory.enabled`` is off) and start its
    embedding job, which first picks up whatever was left pending (a crash, a new model)."""
    config = settings.memory
    if not config.enabled:
        return None
    embedder = build_embedder(config)
    space: EmbeddingSpace | None = None
    if embedder is not None:
        await stack.enter_async_context(embedder)
        space = EmbeddingSpace(embedder.model_name, embedder.dimension)
    store = await stack.enter_async_context(SqliteMemoryStore(settings.database_path, space=space))
    job: EmbeddingJob | None = None
    if embedder is not None:
        job = EmbeddingJob(
            store, embedder, IndexingSettings(batch_size=config.batch_size, idle_s=config.idle_s)
        )
        supervisor.start("memory-embedder", job.run_forever)
    stage = MemoryStage(
        store,
        embedder=embedder,
        facts=store,
        budget=MemoryBudget(
            recall_items=config.recall_items,
            recall_tokens=config.recall_tokens,
            profile_tokens=config.profile_tokens,
            embed_timeout_s=config.embed_timeout_s,
        ),
    )
    log.info("memory on", embedder=embedder.model_name if embedder else None)
    return Memory(store, stage, embedder, job)


@asynccontextmanager
async def open_memory_admin(
    settings: Settings,
) -> AsyncIterator[tuple[SqliteConversationStore, SqliteMemoryStore, AuditLog]]:
    """The stores ``personae memory`` reads and forgets in (no server, no embedder needed)."""
    async with (
        SqliteConversationStore(settings.database_path) as conversations,
        SqliteMemoryStore(settings.database_path) as memory,
        SqliteAuditLog(settings.database_path) as audit,
    ):
        yield conversations, memory, audit
