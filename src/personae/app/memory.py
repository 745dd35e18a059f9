"""Long-term memory in the runtime (``memory:`` settings, docs/memory.md): the embedder, the
memory store beside the conversation store (SQLite or PostgreSQL), the embedding job under
the supervisor and the memory stage the chat service calls each turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from personae.app.database import open_stores, sqlite_database
from personae.app.knowledge import knowledge_indexer
from personae.core.memory.indexing import EmbeddingJob, IndexingSettings
from personae.core.memory.items import EmbeddingSpace
from personae.core.memory.llm_extract import LlmFactExtractor
from personae.core.memory.midterm import MidTermJob, MidTermMemory, MidTermSettings
from personae.core.memory.stage import MemoryBudget, MemoryStage, PromptMemory
from personae.core.memory.summary import Summariser
from personae.core.ports import AuditLog, ChatModel, ConversationStore, Embedder
from personae.core.supervisor import Supervisor
from personae.errors import ConfigurationError
from personae.knowledge.watcher import KnowledgeWatcher
from personae.settings import MemorySettings, Settings

if TYPE_CHECKING:
    from personae.app.database import FactMemoryStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Memory:
    store: FactMemoryStore
    stage: PromptMemory  # profile + recall, and the summary when mid-term memory is on
    embedder: Embedder | None  # None: full-text recall only
    job: EmbeddingJob | None
    midterm: MidTermJob | None = None  # the summary and the LLM fact extractor


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
    settings: Settings,
    stack: AsyncExitStack,
    supervisor: Supervisor,
    *,
    memory_store: Callable[[EmbeddingSpace | None], FactMemoryStore],
    conversations: ConversationStore | None = None,
    model: ChatModel | None = None,
    cross_character: Callable[[str], bool] = lambda character_id: False,
) -> Memory | None:
    """Open memory on the runtime's stack (None when ``memory.enabled`` is off) and start its
    embedding job, which first picks up whatever was left pending (a crash, a new model).
    With ``conversations`` and ``model`` (the LLM that writes them), the mid-term job too;
    ``cross_character`` says which characters see the user's memory with others."""
    config = settings.memory
    if not config.enabled:
        return None
    embedder = build_embedder(config)
    space: EmbeddingSpace | None = None
    if embedder is not None:
        await stack.enter_async_context(embedder)
        space = EmbeddingSpace(embedder.model_name, embedder.dimension)
    store = memory_store(space)
    await stack.enter_async_context(store)
    job: EmbeddingJob | None = None
    if embedder is not None:
        job = EmbeddingJob(
            store, embedder, IndexingSettings(batch_size=config.batch_size, idle_s=config.idle_s)
        )
        supervisor.start("memory-embedder", job.run_forever)
    indexer = knowledge_indexer(config, store, embedder)
    if indexer is not None:  # documents attached to characters, re-indexed as they change
        supervisor.start("knowledge-watcher", KnowledgeWatcher(indexer).run_forever)
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
        conversations=conversations,
        cross_character=cross_character,
    )
    midterm = None
    prompt_memory: PromptMemory = stage
    if conversations is not None and model is not None:
        midterm = midterm_job(
            config, conversations, store, model, context_tokens=settings.llm.context_tokens
        )
        if midterm is not None:
            supervisor.start("memory-midterm", midterm.run_forever)
            prompt_memory = MidTermMemory(stage, conversations, midterm)
    log.info("memory on", embedder=embedder.model_name if embedder else None)
    return Memory(store, prompt_memory, embedder, job, midterm)


def midterm_model(
    settings: Settings, models: Mapping[str, ChatModel], default: ChatModel
) -> ChatModel:
    """The backend that writes summaries and extracts facts: ``memory.midterm_backend``, or
    the default route's."""
    name = settings.memory.midterm_backend
    if name is None:
        return default
    if name not in models:
        raise ConfigurationError(
            f"memory.midterm_backend: no backend {name!r} (known: {', '.join(sorted(models))})"
        )
    return models[name]


def midterm_job(
    config: MemorySettings,
    conversations: ConversationStore,
    store: FactMemoryStore,
    model: ChatModel,
    *,
    context_tokens: int = 2048,
) -> MidTermJob | None:
    """The rolling summary and the LLM fact extractor on ``model`` (None if both are off)."""
    if not config.summary_tokens and not config.extract_every_turns:
        return None
    context = model.context_window or context_tokens
    summariser = None
    if config.summary_tokens:
        # The batch of messages gets what the context holds beside the answer and instructions.
        room = context - 3 * config.summary_tokens - 200
        summariser = Summariser(
            model, summary_tokens=config.summary_tokens, input_tokens=max(200, min(3000, room))
        )
    return MidTermJob(
        conversations,
        store,
        summariser=summariser,
        extractor=LlmFactExtractor(model) if config.extract_every_turns else None,
        facts=store,
        settings=MidTermSettings(
            summary_tokens=config.summary_tokens,
            summary_min_messages=config.summary_min_messages,
            extract_every_turns=config.extract_every_turns,
        ),
    )


@asynccontextmanager
async def open_memory_admin(
    settings: Settings,
) -> AsyncIterator[tuple[ConversationStore, FactMemoryStore, AuditLog]]:
    """The stores ``personae memory`` reads and forgets in (no server, no embedder needed),
    on the configured backend."""
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, database)
        memory = stores.memory(None)
        await stack.enter_async_context(memory)
        yield stores.conversations, memory, stores.audit
