"""The REST API for people and front ends: characters, conversations, messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.types import Caller, Conversation, Message
from personae.errors import ConversationNotFound
from personae.transports.auth import caller, self_caller
from personae.transports.gateway import Gateway, gateway

router = APIRouter(prefix="/api", tags=["api"])


class CharacterOut(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    greetings: list[str]
    version: str  # the author's version label (a card's character_version)
    version_hash: str  # sha256 of the file the serving version was read from
    # "error": the file changed and did not load; the version above keeps serving.
    load_status: Literal["ok", "error"]
    errors: list[str]

    @classmethod
    def of(cls, v: CharacterVersion, catalog: CharacterCatalog) -> CharacterOut:
        c = v.character
        errors = catalog.errors(c.id)
        return cls(
            id=c.id,
            name=c.name,
            description=c.summary,
            tags=list(c.tags),
            greetings=list(c.greetings),
            version=c.version,
            version_hash=v.hash,
            load_status="error" if errors else "ok",
            errors=list(errors),
        )


class CharacterVersionOut(BaseModel):
    hash: str
    version: str
    name: str
    current: bool

    @classmethod
    def of(cls, v: CharacterVersion, *, current: bool) -> CharacterVersionOut:
        return cls(hash=v.hash, version=v.character.version, name=v.character.name, current=current)


class ConversationOut(BaseModel):
    id: str
    character_id: str
    created_at: datetime
    updated_at: datetime
    last_seq: int

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        return cls(
            id=c.id,
            character_id=c.character_id,
            created_at=c.created_at,
            updated_at=c.updated_at,
            last_seq=c.last_seq,
        )


class MessageOut(BaseModel):
    id: str
    seq: int
    role: str
    content: str
    status: str
    created_at: datetime
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    character_version: str | None  # the character version that wrote a reply
    swipe_of: str | None = None  # one of a reply's alternatives: the first reply of them
    hidden: bool = False  # not in the history: an alternative not chosen (``alternatives``)
    edited_at: datetime | None = None

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls(
            id=m.id,
            seq=m.seq,
            role=m.role.value,
            content=m.content,
            status=m.status.value,
            created_at=m.created_at,
            model=m.model,
            prompt_tokens=m.prompt_tokens,
            completion_tokens=m.completion_tokens,
            latency_ms=m.latency_ms,
            character_version=m.character_version,
            swipe_of=m.swipe_of,
            hidden=m.hidden,
            edited_at=m.edited_at,
        )


# Every route authenticates, checks the role and counts against the caller's rate limits;
# ``ActingFor`` also resolves the ``user`` query parameter (an end user the caller may act for).
Admitted = Annotated[Caller, Depends(self_caller)]
ActingFor = Annotated[Caller, Depends(caller)]
Gw = Annotated[Gateway, Depends(gateway)]


@router.get("/characters")
async def list_characters(gw: Gw, _: Admitted) -> list[CharacterOut]:
    return [CharacterOut.of(v, gw.catalog) for v in gw.catalog.all_versions()]


@router.get("/characters/{character_id}")
async def get_character(character_id: str, gw: Gw, _: Admitted) -> CharacterOut:
    return CharacterOut.of(gw.catalog.get_version(character_id), gw.catalog)


@router.get("/characters/{character_id}/versions")
async def list_character_versions(
    character_id: str, gw: Gw, _: Admitted
) -> list[CharacterVersionOut]:
    """The versions kept in memory, newest (the one serving) first."""
    versions = gw.catalog.versions(character_id)
    return [CharacterVersionOut.of(v, current=i == 0) for i, v in enumerate(versions)]


@router.get("/conversations")
async def list_conversations(
    gw: Gw,
    acting: ActingFor,
    character: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ConversationOut]:
    found = await gw.store.get_user(acting.user)
    if found is None:
        return []
    conversations = await gw.store.list_conversations(found.id, character_id=character, limit=limit)
    return [ConversationOut.of(c) for c in conversations]


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(
    conversation_id: str,
    gw: Gw,
    acting: ActingFor,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    alternatives: bool = False,  # also the hidden ones: the swipes not chosen, old replies
) -> list[MessageOut]:
    owner = await gw.store.get_user(acting.user)
    conversation = await gw.store.get_conversation(conversation_id)
    # Someone else's conversation is reported as missing, not as forbidden: its existence is
    # not the caller's business.
    if owner is None or conversation is None or conversation.user_id != owner.id:
        raise ConversationNotFound(conversation_id)
    messages = await gw.store.list_messages(
        conversation_id, after_seq=after_seq, limit=limit, alternatives=alternatives
    )
    return [MessageOut.of(m) for m in messages]
