"""Memory as commands: ``/remember <fact>``, ``/recall <query>``, ``/forget <query or id>``,
over the user's private memory with this character (the ``MemoryStore`` of docs/memory.md).

With memory switched off (``memory.enabled: false``) each command says so plainly.

``/forget`` never echoes what it forgot: the reply is stored, and stored replies are
remembered, so quoting the forgotten text would write it back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import structlog

from personae.core.memory.items import MemoryItem, NewMemory, Partition
from personae.core.memory.scope import private_partitions
from personae.core.ports import ConversationStore, Embedder, MemoryStore
from personae.core.skills import Intent, Skill, SkillContext, SkillResult, SlashCommand
from personae.errors import InvalidInput

log = structlog.get_logger(__name__)

MEMORY_OFF = "Memory is off on this server, so I cannot remember, recall or forget anything."
REMEMBERED_KIND = "remembered"  # what the user asked for explicitly (docs/memory.md kinds)
SHORT_ID = 8  # hex characters of an item id shown to users
_ID = re.compile(r"^(?:mem_)?([0-9a-f]{6,32})$", re.I)
_SCAN = 10_000  # items read to resolve a short id


class MemorySkill(Skill):
    name = "memory"
    version = "1"
    description = (
        "The user's long-term memory with this character: remember a fact, recall what is "
        "remembered about something, forget it."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["remember", "recall", "forget"]},
            "text": {
                "type": "string",
                "maxLength": 2000,
                "description": "the fact to remember, or what to recall or forget",
            },
        },
        "required": ["action", "text"],
        "additionalProperties": False,
    }
    triggers = (SlashCommand("remember"), SlashCommand("recall"), SlashCommand("forget"))

    def __init__(
        self,
        store: MemoryStore | None,
        conversations: ConversationStore,
        *,
        embedder: Embedder | None = None,
        embed_timeout_s: float = 0.5,
        recall_limit: int = 5,
        forget_limit: int = 20,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store  # None: memory is off
        self._conversations = conversations
        self._embedder = embedder
        self._embed_timeout_s = embed_timeout_s
        self._recall_limit = recall_limit
        self._forget_limit = forget_limit
        self._clock = clock

    def arguments(self, intent: Intent) -> dict[str, Any]:
        action = intent.trigger.name if isinstance(intent.trigger, SlashCommand) else "recall"
        return {"action": action, "text": intent.text}

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        if self._store is None:
            return SkillResult(text=MEMORY_OFF, data={"memory": "off"})
        action, text = str(args["action"]), str(args["text"]).strip()
        if not text:
            raise InvalidInput(f"say what to {action}: /{action} <text>")
        partitions = await private_partitions(
            self._conversations, context.user, context.character_id
        )
        if not partitions:  # the turn stored the user, so only a race with an erasure
            raise InvalidInput("there is no memory of you here yet")
        partition = partitions[0]
        if action == "remember":
            return await self._remember(self._store, partition, text)
        if action == "forget":
            return await self._forget(self._store, partition, text, context.message)
        return await self._recall(self._store, partition, text, context.message)

    async def _remember(self, store: MemoryStore, partition: Partition, text: str) -> SkillResult:
        new = NewMemory(partition, text, self._clock(), kind=REMEMBERED_KIND, importance=1.0)
        (item,) = await store.add([new])
        return SkillResult(
            text=f"I will remember that. (memory {_short(item)})",
            data={"remembered": text, "id": _short(item)},
        )

    async def _recall(
        self, store: MemoryStore, partition: Partition, query: str, message: str
    ) -> SkillResult:
        hits = await store.search(
            [partition],
            text=query,
            vector=await self._vector(query),
            limit=self._recall_limit,
            now=self._clock(),
            exclude_texts=[message],  # the /recall command itself is stored as a memory
        )
        if not hits:
            return SkillResult(text=f"I remember nothing about {query!r}.", data={"memories": []})
        lines = [f"{_short(h.item)} [{h.item.created_at:%Y-%m-%d}] {h.item.text}" for h in hits]
        return SkillResult(
            text="I remember:\n" + "\n".join(lines),
            data={"memories": [{"id": _short(h.item), "text": h.item.text} for h in hits]},
        )

    async def _forget(
        self, store: MemoryStore, partition: Partition, wanted: str, message: str
    ) -> SkillResult:
        by_id = _ID.match(wanted)
        if by_id is not None:
            prefix = by_id[1].lower()
            items = await store.list_items(partition, limit=_SCAN)
            found = [i for i in items if i.id.removeprefix("mem_").startswith(prefix)]
            if len(found) == 1:
                await store.delete(partition, [found[0].id])
                return SkillResult(text="Forgotten: 1 memory.", data={"forgotten": 1})
            if len(found) > 1:
                raise InvalidInput(f"{wanted!r} names {len(found)} memories; give more of the id")
        hits = await store.search(
            [partition], text=wanted, limit=self._forget_limit, now=self._clock()
        )
        # Only items that contain the words (full-text hits), the /forget message among them:
        # it holds what is to be forgotten too.
        chosen = [h.item for h in hits if h.fulltext_rank is not None]
        if chosen:
            await store.delete(partition, [item.id for item in chosen])
        count = sum(1 for item in chosen if item.text != message)
        if not count:
            return SkillResult(text="I found nothing like that to forget.", data={"forgotten": 0})
        noun = "memory" if count == 1 else "memories"
        return SkillResult(text=f"Forgotten: {count} {noun}.", data={"forgotten": count})

    async def _vector(self, query: str) -> Sequence[float] | None:
        if self._embedder is None or self._store is None or self._store.space is None:
            return None
        try:
            async with asyncio.timeout(self._embed_timeout_s):
                (vector,) = await self._embedder.embed([query])
        except Exception:  # slow or down: full-text recall still answers
            log.warning("memory skill: no vector for the query; full text only")
            return None
        return vector


def _short(item: MemoryItem) -> str:
    return item.id.removeprefix("mem_")[:SHORT_ID]
