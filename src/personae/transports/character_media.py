"""A character's avatar (``GET /api/characters/{id}/avatar``, any signed-in caller) and its
file in another card format (``GET /api/characters/{id}/export?format=...``, admins: the file
holds the whole definition, and exports are audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from personae.core.types import Caller
from personae.transports.admin import audit_entry
from personae.transports.auth import admin_caller, self_caller
from personae.transports.gateway import Gateway, NotReady, gateway

router = APIRouter(prefix="/api/characters", tags=["characters"])

Gw = Annotated[Gateway, Depends(gateway)]


@router.get(
    "/{character_id}/avatar",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, 304: {"description": "not modified"}},
)
async def character_avatar(
    character_id: str, request: Request, gw: Gw, _: Annotated[Caller, Depends(self_caller)]
) -> Response:
    """A small WebP of the card's picture (or a generated one); cached by the version's hash."""
    if gw.media is None:
        raise NotReady("this server serves no character media")
    picture = await gw.media.avatar(character_id)
    etag = f'"{picture.tag}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=300"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(picture.data, media_type=picture.media_type, headers=headers)


@router.get(
    "/{character_id}/export",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def export_character(
    character_id: str,
    gw: Gw,
    caller: Annotated[Caller, Depends(admin_caller)],
    format: str = "v3",
) -> Response:
    """The character's file as ``v2`` or ``v3`` JSON, ``png``, ``charx`` or ``yaml``."""
    if gw.media is None:
        raise NotReady("this server serves no character media")
    exported = await gw.media.export(character_id, format)
    if gw.security is not None:
        details = {"format": format, "version": exported.tag}
        await gw.security.audit.record(
            [audit_entry("character.export", caller, character_id, details)]
        )
    disposition = f'attachment; filename="{exported.filename}"'
    return Response(
        exported.data, media_type=exported.media_type, headers={"Content-Disposition": disposition}
    )
