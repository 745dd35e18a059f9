"""Who is calling, from the ``Authorization: Bearer`` header (or ``X-API-Key``), and whom it
may act for (docs/operations.md, "Security"): an admin for anyone, a user only for itself, a
service for the end users of its own tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from personae.core.types import TENANT_SEPARATOR, AccessRole, Caller, Principal
from personae.errors import PermissionDenied
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
    """The end user (its id in the store) a request acts for: the one it names, else the
    caller itself. ``PermissionDenied`` when the caller may not act for the one it names."""
    if principal.is_admin:
        return claimed or principal.subject
    if principal.role is AccessRole.USER:
        if claimed not in (None, principal.subject):
            raise PermissionDenied("a user's key acts only for that user")
        return principal.user_id(principal.subject)
    if claimed is not None and TENANT_SEPARATOR in claimed:
        raise PermissionDenied("a service acts only for the users of its own tenant")
    return principal.user_id(claimed or principal.subject)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("this needs an admin key")


async def admit(gw: Gateway, caller: Caller) -> None:
    """Rate limits (``RateLimited``); and the caller becomes known to the audit."""
    if gw.security is not None:
        await gw.security.gate.admit(caller)


async def acting_for(
    request: Request, gw: Gateway, principal: Principal, claimed: str | None
) -> Caller:
    """The admitted caller of a request that acts for ``claimed`` (None: for itself)."""
    client = request.client.host if request.client else None
    caller = Caller(principal, end_user(principal, claimed), client)
    await admit(gw, caller)
    return caller


async def caller(
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(principal)],
    user: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> Caller:
    """FastAPI dependency: the admitted caller, acting for the ``user`` query parameter."""
    return await acting_for(request, gw, who, user)


async def self_caller(
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(principal)],
) -> Caller:
    """FastAPI dependency: the admitted caller of a route that acts for no end user."""
    return await acting_for(request, gw, who, None)


async def admin_caller(
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(principal)],
) -> Caller:
    """FastAPI dependency: the admitted caller of an admin route; 403 for anyone else."""
    require_admin(who)
    return await acting_for(request, gw, who, None)
