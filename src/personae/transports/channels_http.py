"""HTTP routes of the chat-platform channels (docs/channels.md): pushed updates (signed
webhooks, Telegram's webhook mode), link codes for signed-in users, and channel health.

The channels themselves are in ``app.state.channels`` (a ``ChannelGateway``), installed by
the composition root; without configured channels these routes answer 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from personae.core.channels import ChannelGateway
from personae.core.types import Caller
from personae.errors import NotFound
from personae.transports.auth import caller

router = APIRouter(tags=["channels"])


def channels(request: Request) -> ChannelGateway:
    found = getattr(request.app.state, "channels", None)
    if not isinstance(found, ChannelGateway):
        raise NotFound("no chat-platform channels are configured")
    return found


Channels = Annotated[ChannelGateway, Depends(channels)]


class LinkCode(BaseModel):
    code: str
    expires_at: datetime
    user: str


@router.post("/channels/{name}")
async def push(name: str, request: Request, gateway: Channels) -> dict[str, Any]:
    """A platform pushes an update; its own signature or secret authenticates it. The answer
    is ``{"accepted": n}``, or what the platform expects (Slack's challenge)."""
    body = await request.body()
    return await gateway.push(name, dict(request.headers), body)


@router.post("/api/channels/link-code")
async def link_code(gateway: Channels, who: Annotated[Caller, Depends(caller)]) -> LinkCode:
    """A one-time code that links a chat-platform account to this user (send ``/link
    <code>`` to the bot)."""
    code, expires_at = await gateway.issue_link_code(who.user)
    return LinkCode(code=code, expires_at=expires_at, user=who.user)


@router.get("/channels")
async def health(gateway: Channels) -> dict[str, str]:
    """Each channel's state: up, starting, reconnecting or down (with the last error)."""
    return gateway.health()
