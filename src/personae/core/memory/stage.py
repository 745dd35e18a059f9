"""The memory stage of a turn: after the prompt is assembled, before the model is called.

    the user's profile of facts (always, within its budget)
    + recall: embed the message (bounded wait) -> hybrid search of the user's partition with
      this character and the character's knowledge -> drop what the window already holds
    -> one system note before the user's message (``skill_stage.with_note``)

Memory helps a turn but never fails one: an embedder that is slow or down means full-text
recall only, and a store that fails means no note (both logged).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from personae.core.memory.capture import REPLY_KIND, is_fact
from personae.core.memory.items import MemoryHit, Partition
from personae.core.memory.knowledge import ChunkRef
from personae.core.memory.profile import FactSource, current_facts, within
from personae.core.memory.scope import shared_partitions
from personae.core.ports import ConversationStore, Embedder, MemoryStore
from personae.core.prompt import AssembledPrompt
from personae.core.skill_stage import with_note
from personae.core.types import OpenedTurn

log = structlog.get_logger(__name__)

CountTokens = Callable[[str], int]

PROFILE_HEADING = "What the user has told you about themselves:"
RECALL_HEADING = "From earlier conversations (long-term memory):"
KNOWLEDGE_HEADING = "From the documents you were given ([document#chunk]):"


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    recall_items: int = 5
    recall_tokens: int = 300
    profile_tokens: int = 150
    embed_timeout_s: float = 0.5
    profile_facts: int = 200  # fact items read to build the profile


#: Tokens the note may cost beyond its budgets: its message's role markers, the blank line
#: between sections, and a tokenizer that counts the whole a little above its parts.
NOTE_OVERHEAD_TOKENS = 12


class PromptMemory(Protocol):
    #: Prompt tokens kept free for the note (the prompt is assembled without them).
    @property
    def reserved_tokens(self) -> int: ...

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt: ...


class NoMemory:
    """Memory switched off: the prompt as it is."""

    reserved_tokens = 0

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        return prompt


class MemoryStage:
    def __init__(
        self,
        store: MemoryStore,
        *,
        embedder: Embedder | None = None,
        facts: FactSource | None = None,
        budget: MemoryBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        conversations: ConversationStore | None = None,
        cross_character: Callable[[str], bool] = lambda character_id: False,
    ) -> None:
        self._store = store
        # Which characters see the user's memory with other characters, and where to find
        # those characters (core/memory/scope.py); by default each pair's memory is its own.
        self._conversations = conversations
        self._cross_character = cross_character
        self._embedder = embedder
        self._facts = facts
        self._budget = budget or MemoryBudget()
        self._clock = clock

    @property
    def reserved_tokens(self) -> int:
        budget = self._budget
        return budget.profile_tokens + budget.recall_tokens + NOTE_OVERHEAD_TOKENS

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        """``prompt`` with the note of what memory holds for this turn (if anything)."""
        try:
            note, cited = await self._compose(
                opened, [m.content for m in prompt.messages], count_tokens
            )
        except Exception:  # memory is an aid: a broken store must not fail the turn
            log.exception("memory recall failed; the turn goes on without it")
            return prompt
        return replace(with_note(prompt, note, count_tokens), knowledge=cited)

    async def note(
        self, opened: OpenedTurn, window: Sequence[str], count_tokens: CountTokens
    ) -> str | None:
        """The profile and the recalled items not already in ``window``, within budget."""
        return (await self._compose(opened, window, count_tokens))[0]

    async def _compose(
        self, opened: OpenedTurn, window: Sequence[str], count_tokens: CountTokens
    ) -> tuple[str | None, tuple[str, ...]]:
        """The note, and the knowledge chunks it cites (``core.memory.knowledge``)."""
        partitions = await self._visible(opened.user.id, opened.conversation.character_id)
        # Each section within its own budget, its heading included.
        profile_budget = self._budget.profile_tokens - count_tokens(PROFILE_HEADING)
        profile = within(await self._profile(partitions), profile_budget, count_tokens)
        hits = await self._recall(partitions, opened.message.content, [*window, *profile])
        recall_budget = self._budget.recall_tokens - count_tokens(RECALL_HEADING)
        if any(_document(hit) for hit in hits):  # documents get a section of their own
            recall_budget -= count_tokens(KNOWLEDGE_HEADING)
        recalled = within(
            [_line(hit, opened.conversation.character_id) for hit in hits],
            recall_budget,
            count_tokens,
        )
        shown = list(zip(hits, recalled, strict=False))  # the hits that fit the budget
        remembered = [line for hit, line in shown if not _document(hit)]
        documents = [(ref, line) for hit, line in shown if (ref := _document(hit))]
        sections = [
            "\n".join([heading, *(f"- {line}" for line in lines)])
            for heading, lines in (
                (PROFILE_HEADING, profile),
                (RECALL_HEADING, remembered),
                (KNOWLEDGE_HEADING, [line for _, line in documents]),
            )
            if lines
        ]
        return "\n\n".join(sections) or None, tuple(ref.citation for ref, _ in documents)

    async def _visible(self, user_id: str, character_id: str) -> list[Partition]:
        """The user's private partitions this character may read, its own first."""
        if self._conversations is not None and self._cross_character(character_id):
            return await shared_partitions(self._conversations, user_id, character_id)
        return [Partition.private(user_id, character_id)]

    async def _profile(self, partitions: Sequence[Partition]) -> list[str]:
        if self._facts is None or not self._budget.profile_tokens:
            return []
        facts = [
            fact
            for partition in partitions
            for fact in await self._facts.list_facts(partition, limit=self._budget.profile_facts)
        ]
        facts.sort(key=lambda fact: fact.created_at, reverse=True)  # newest first, across all
        return current_facts(facts)

    async def _recall(
        self, private: Sequence[Partition], text: str, exclude: Sequence[str]
    ) -> list[MemoryHit]:
        if not self._budget.recall_items or not self._budget.recall_tokens:
            return []
        character = private[0].character_id
        partitions = [*private, Partition.knowledge(character), Partition.knowledge()]
        hits = await self._store.search(
            partitions,
            text=text,
            vector=await self._query_vector(text),
            limit=2 * self._budget.recall_items,  # room for the facts left out below
            now=self._clock(),
            exclude_texts=exclude,
        )
        # The profile already states the current facts; an older value would contradict it.
        kept = [hit for hit in hits if not is_fact(hit.item.kind)]
        return kept[: self._budget.recall_items]

    async def _query_vector(self, text: str) -> list[float] | None:
        """The message's vector, or None (full-text recall) if the embedder is missing, slow
        or failing."""
        if self._embedder is None or self._store.space is None:
            return None
        try:
            async with asyncio.timeout(self._budget.embed_timeout_s):
                (vector,) = await self._embedder.embed([text])
        except Exception as exc:  # TimeoutError included
            log.warning(
                "memory: no query vector, full-text recall only",
                error=f"{type(exc).__name__}: {exc}",
            )
            return None
        return vector


def _line(hit: MemoryHit, character_id: str) -> str:
    item = hit.item
    who = "You said" if item.kind == REPLY_KIND else "The user said"
    if item.partition.character_id != character_id:  # a character sharing memory across
        who = f"{item.partition.character_id} said" if item.kind == REPLY_KIND else who
        who += f" (with {item.partition.character_id})" if item.kind != REPLY_KIND else ""
    if item.partition.user_id == "":  # knowledge: a document, cited by document and chunk
        ref = _document(hit)
        text = " ".join(item.text.split())  # one line per hit, whatever the page layout
        return f"[{ref.citation}] {text}" if ref else text
    return f"[{item.created_at:%Y-%m-%d}] {who}: {item.text}"


def _document(hit: MemoryHit) -> ChunkRef | None:
    """The document chunk a hit is, if it is one (``core.memory.knowledge``)."""
    return ChunkRef.of_kind(hit.item.kind) if hit.item.partition.user_id == "" else None
