"""Who is calling, from the ``Authorization: Bearer`` header (or ``X-API-Key``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from personae.core.types import Principal
from personae.transports.gateway import Gateway, gateway


async def principal(
    gw: Annotated[Gateway, Depends(gateway)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    credential = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        credential = value.strip() if scheme.lower() == "bearer" else authorization
    return await gw.authenticator.authenticate(credential)


def end_user(principal: Principal, claimed: str | None) -> str:
    """The end user a request acts for: the one it names, else the caller itself. The
    operations issue restricts who may name whom (service keys, tenants)."""
    return claimed or principal.subject
