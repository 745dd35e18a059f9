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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from personae.core.memory.capture import REPLY_KIND, is_fact
from personae.core.memory.items import MemoryHit, Partition
from personae.core.memory.profile import FactSource, current_facts, within
from personae.core.ports import Embedder, MemoryStore
from personae.core.prompt import AssembledPrompt
from personae.core.skill_stage import with_note
from personae.core.types import OpenedTurn

log = structlog.get_logger(__name__)

CountTokens = Callable[[str], int]

PROFILE_HEADING = "What the user has told you about themselves:"
RECALL_HEADING = "From earlier conversations (long-term memory):"


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
    ) -> None:
        self._store = store
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
            note = await self.note(opened, [m.content for m in prompt.messages], count_tokens)
        except Exception:  # memory is an aid: a broken store must not fail the turn
            log.exception("memory recall failed; the turn goes on without it")
            return prompt
        return with_note(prompt, note, count_tokens)

    async def note(
        self, opened: OpenedTurn, window: Sequence[str], count_tokens: CountTokens
    ) -> str | None:
        """The profile and the recalled items not already in ``window``, within budget."""
        partition = Partition.private(opened.user.id, opened.conversation.character_id)
        # Each section within its own budget, its heading included.
        profile_budget = self._budget.profile_tokens - count_tokens(PROFILE_HEADING)
        profile = within(await self._profile(partition), profile_budget, count_tokens)
        hits = await self._recall(partition, opened.message.content, [*window, *profile])
        recall_budget = self._budget.recall_tokens - count_tokens(RECALL_HEADING)
        recalled = within([_line(hit) for hit in hits], recall_budget, count_tokens)
        sections = [
            "\n".join([heading, *(f"- {line}" for line in lines)])
            for heading, lines in ((PROFILE_HEADING, profile), (RECALL_HEADING, recalled))
            if lines
        ]
        return "\n\n".join(sections) or None

    async def _profile(self, partition: Partition) -> list[str]:
        if self._facts is None or not self._budget.profile_tokens:
            return []
        facts = await self._facts.list_facts(partition, limit=self._budget.profile_facts)
        return current_facts(facts)

    async def _recall(
        self, partition: Partition, text: str, exclude: Sequence[str]
    ) -> list[MemoryHit]:
        if not self._budget.recall_items or not self._budget.recall_tokens:
            return []
        character = partition.character_id
        partitions = [partition, Partition.knowledge(character), Partition.knowledge()]
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


def _line(hit: MemoryHit) -> str:
    item = hit.item
    who = "You said" if item.kind == REPLY_KIND else "The user said"
    if item.partition.user_id == "":  # knowledge: a document, not a conversation
        return item.text
    return f"[{item.created_at:%Y-%m-%d}] {who}: {item.text}"
