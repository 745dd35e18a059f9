"""What long-term memory holds of a user, and forgetting it: ``GET /api/memory`` and
``DELETE /api/memory[/{item}]``. A user reads and erases only its own memory (a service its
tenant's users', an admin anyone's: the ``user`` query parameter, as everywhere). Every
forgetting is an audit row."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.scope import private_partitions
from personae.core.ports import MemoryStore
from personae.core.types import Caller
from personae.errors import NotFound
from personae.transports.admin import audit_entry
from personae.transports.auth import caller
from personae.transports.gateway import Gateway, gateway

router = APIRouter(prefix="/api/memory", tags=["memory"])

ActingFor = Annotated[Caller, Depends(caller)]
Gw = Annotated[Gateway, Depends(gateway)]
Character = Annotated[str | None, Query(min_length=1, max_length=64)]
PER_CHARACTER = 1000  # items listed per character, newest first


class MemoryOut(BaseModel):
    id: str
    character: str
    text: str
    kind: str
    importance: float
    created_at: datetime

    @classmethod
    def of(cls, item: MemoryItem) -> MemoryOut:
        return cls(
            id=item.id,
            character=item.partition.character_id,
            text=item.text,
            kind=item.kind,
            importance=item.importance,
            created_at=item.created_at,
        )


class Forgotten(BaseModel):
    forgotten: int


@router.get("")
async def show_memory(who: ActingFor, gw: Gw, character: Character = None) -> list[MemoryOut]:
    """What is remembered of the user: with one character, or with every one it talked to."""
    store, partitions = await _partitions(gw, who, character)
    items: list[MemoryItem] = []
    if store is not None:
        for partition in partitions:
            items += await store.list_items(partition, limit=PER_CHARACTER)
    return [MemoryOut.of(item) for item in items]


@router.delete("")
async def forget_memory(who: ActingFor, gw: Gw, character: Character = None) -> Forgotten:
    """Forget everything remembered of the user (with one character, or with all)."""
    store, partitions = await _partitions(gw, who, character)
    count = sum([await store.delete(p) for p in partitions]) if store is not None else 0
    await _audit(gw, who, character or "*", count)
    return Forgotten(forgotten=count)


@router.delete("/{item_id}")
async def forget_item(item_id: str, who: ActingFor, gw: Gw) -> Forgotten:
    """Forget one remembered item of the user."""
    store, partitions = await _partitions(gw, who, None)
    found = await store.get([item_id]) if store is not None else []
    item = found[0] if found else None
    if item is None or item.partition not in partitions:  # another user's looks unknown
        raise NotFound(f"no memory {item_id!r}", item=item_id)
    assert store is not None  # an item was found in it
    count = await store.delete(item.partition, [item_id])
    await _audit(gw, who, item_id, count)
    return Forgotten(forgotten=count)


async def _partitions(
    gw: Gateway, who: Caller, character: str | None
) -> tuple[MemoryStore | None, list[Partition]]:
    """The store and the caller's partitions in it (none when memory is off: nothing is
    remembered, so there is nothing to show or forget)."""
    if gw.memory is None:
        return None, []
    return gw.memory, await private_partitions(gw.store, who.user, character)


async def _audit(gw: Gateway, who: Caller, target: str, count: int) -> None:
    if gw.security is not None:
        entry = audit_entry("memory.forget", who, target, {"user": who.user, "items": count})
        await gw.security.audit.record([entry])
