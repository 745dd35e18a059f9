"""``POST /api/characters``: admins add or replace a character by uploading its file, as
multipart form data (field ``file``: YAML, JSON, PNG/APNG or CHARX; the file's name says which)
or as a card's JSON body. The character is served as soon as the answer arrives."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from personae.core.types import Caller
from personae.errors import InvalidInput
from personae.transports.admin import audit_entry
from personae.transports.auth import admin_caller
from personae.transports.gateway import Gateway, NotReady, gateway
from personae.transports.rest import CharacterOut

PATH = "/api/characters"
router = APIRouter(tags=["characters"])

_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "application/json": {"schema": {"type": "object", "description": "a card (V1-V3)"}},
    },
}


@router.post(PATH, status_code=201, openapi_extra={"requestBody": _BODY})
async def upload_character(
    request: Request,
    caller: Annotated[Caller, Depends(admin_caller)],
    gw: Annotated[Gateway, Depends(gateway)],
    force: bool = False,
) -> CharacterOut:
    """Add a character, or replace the one with the same id when ``force`` is set."""
    if gw.uploads is None:
        raise NotReady("this server takes no character uploads")
    data, filename = await _read_upload(request)
    version = await gw.uploads.import_file(data, filename, force=force)
    if gw.security is not None:
        details = {"file": filename, "version": version.hash, "force": force}
        entry = audit_entry("character.import", caller, version.character.id, details)
        await gw.security.audit.record([entry])
    return CharacterOut.of(version, gw.catalog)


async def _read_upload(request: Request) -> tuple[bytes, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await request.body(), "upload.json"
    if kind != "multipart/form-data":
        raise InvalidInput(
            "send the character as multipart/form-data (a field named 'file') "
            "or a card as application/json"
        )
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the form has no file in a field named 'file'")
        if not upload.filename:
            raise InvalidInput("the uploaded file has no name (its suffix says what it is)")
        return await upload.read(), upload.filename
