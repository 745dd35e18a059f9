"""Group chats over HTTP: start one (``POST /api/groups``), read it, mute or unmute a member.
Talking in a group happens over the WebSocket: ``message.send`` with the group's conversation
and no character (docs/protocol.md, "Group chats")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from personae.core.prompt import greeting_text
from personae.core.types import Caller, Group
from personae.errors import ConversationNotFound, InvalidInput
from personae.transports.auth import caller, end_user
from personae.transports.gateway import Gateway, gateway

router = APIRouter(prefix="/api/groups", tags=["groups"])

ActingFor = Annotated[Caller, Depends(caller)]
Gw = Annotated[Gateway, Depends(gateway)]
MAX_MEMBERS = 8


class GroupIn(BaseModel):
    characters: list[str] = Field(min_length=2, max_length=MAX_MEMBERS)
    # Other users who take part (admins and services only: a user adds no one else).
    users: list[str] = Field(default_factory=list, max_length=32)
    seed: str | None = Field(default=None, min_length=1, max_length=128)  # None: its id


class MemberOut(BaseModel):
    character: str
    muted: bool


class GroupOut(BaseModel):
    conversation: str
    members: list[MemberOut]
    participants: list[str]

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        return cls(
            conversation=group.conversation_id,
            members=[MemberOut(character=m.character_id, muted=m.muted) for m in group.members],
            participants=list(group.participants),
        )


class MuteIn(BaseModel):
    muted: bool


@router.post("", status_code=201)
async def start_group(body: GroupIn, who: ActingFor, gw: Gw) -> GroupOut:
    """Start a group conversation of the caller (or the ``user`` it acts for); each member
    greets with its group greeting (``group_only_greetings``, else its first greeting)."""
    if len(set(body.characters)) != len(body.characters):
        raise InvalidInput("a character is named twice")
    characters = [gw.catalog.get(c) for c in body.characters]  # CharacterNotFound
    participants = [end_user(who.principal, u) for u in body.users]  # PermissionDenied
    name = gw.service.user_name
    greetings = [
        (c.id, text)
        for c in characters
        if (text := greeting_text(c, user_name=name, group=True)) is not None
    ]
    conversation = await gw.store.create_group(
        owner=who.user,
        characters=[c.id for c in characters],
        participants=participants,
        greetings=greetings,
        seed=body.seed,
    )
    return GroupOut.of(await _group(gw, conversation.id, who))


@router.get("/{conversation_id}")
async def read_group(conversation_id: str, who: ActingFor, gw: Gw) -> GroupOut:
    return GroupOut.of(await _group(gw, conversation_id, who))


@router.put("/{conversation_id}/members/{character_id}")
async def mute_member(
    conversation_id: str, character_id: str, body: MuteIn, who: ActingFor, gw: Gw
) -> GroupOut:
    """Mute a member (it speaks only when asked by name with ``speaker``) or unmute it."""
    await _group(gw, conversation_id, who)
    await gw.store.set_member_muted(conversation_id, character_id, body.muted)
    return GroupOut.of(await _group(gw, conversation_id, who))


async def _group(gw: Gateway, conversation_id: str, who: Caller) -> Group:
    """The group, if the caller takes part in it; otherwise it does not exist."""
    group = await gw.store.get_group(conversation_id)
    conversation = await gw.store.get_conversation(conversation_id)
    user = await gw.store.get_user(who.user)
    if group is None or conversation is None or user is None:
        raise ConversationNotFound(conversation_id)
    if conversation.user_id != user.id and who.user not in group.participants:
        raise ConversationNotFound(conversation_id)
    return group
