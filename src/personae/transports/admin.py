"""The admin API (``/api/admin``: keys and the audit log) and users' own data
(``/api/users/{id}``: export and erasure). Key and audit routes are for admins only; a user's
data is also open to that user and to a service of its tenant. Every action is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from personae.core.memory.scope import private_partitions
from personae.core.types import DEFAULT_TENANT, AccessRole, ApiKey, AuditEntry, Caller, Principal
from personae.errors import NotFound
from personae.transports.auth import acting_for, admin_caller, principal
from personae.transports.gateway import Gateway, NotReady, SecurityPorts, gateway

router = APIRouter(tags=["admin"])

AdminCaller = Annotated[Caller, Depends(admin_caller)]
Who = Annotated[Principal, Depends(principal)]


def security(gw: Annotated[Gateway, Depends(gateway)]) -> SecurityPorts:
    if gw.security is None:
        raise NotReady("the admin API is not available: the server has no key or audit store")
    return gw.security


Security = Annotated[SecurityPorts, Depends(security)]


class KeyIn(BaseModel):
    role: AccessRole
    subject: str = Field(min_length=1, max_length=256)  # the user it is, or the service's name
    tenant: str = Field(default=DEFAULT_TENANT, min_length=1, max_length=256)
    expires_at: AwareDatetime | None = None


class KeyOut(BaseModel):
    id: str
    role: AccessRole
    subject: str
    tenant: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            role=key.role,
            subject=key.subject,
            tenant=key.tenant,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class IssuedKeyOut(KeyOut):
    token: str  # the whole key: shown this once, never stored, never shown again


class AuditOut(BaseModel):
    id: int | None
    at: datetime | None
    action: str
    actor: str
    outcome: str
    target: str | None
    role: str | None
    tenant: str | None
    key_id: str | None
    client: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(
            id=e.id,
            at=e.at,
            action=e.action,
            actor=e.actor,
            outcome=e.outcome,
            target=e.target,
            role=e.role,
            tenant=e.tenant,
            key_id=e.key_id,
            client=e.client,
            details=e.details,
        )


def audit_entry(
    action: str, caller: Caller, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    who = caller.principal
    return AuditEntry(
        action=action,
        actor=who.subject,
        target=target,
        role=who.role.value,
        tenant=who.tenant,
        key_id=who.key_id,
        client=caller.client,
        details=details or {},
    )


@router.post("/api/admin/keys", status_code=201)
async def create_key(body: KeyIn, caller: AdminCaller, sec: Security) -> IssuedKeyOut:
    issued = await sec.keys.issue(
        role=body.role, subject=body.subject, tenant=body.tenant, expires_at=body.expires_at
    )
    key = issued.key
    details = {"role": key.role.value, "subject": key.subject, "tenant": key.tenant}
    await sec.audit.record([audit_entry("key.create", caller, key.id, details)])
    return IssuedKeyOut(**KeyOut.of(key).model_dump(), token=issued.token)


@router.get("/api/admin/keys")
async def list_keys(_: AdminCaller, sec: Security) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await sec.keys.all_keys()]


@router.delete("/api/admin/keys/{key_id}")
async def revoke_key(key_id: str, caller: AdminCaller, sec: Security) -> KeyOut:
    revoked = await sec.keys.revoke(key_id)
    await sec.audit.record([audit_entry("key.revoke", caller, key_id)])
    return KeyOut.of(revoked)


@router.get(
    "/api/admin/audit",
    response_model=None,
    # format=jsonl answers JSON lines: documented, so clients (and schemathesis) expect it.
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def read_audit(
    _: AdminCaller,
    sec: Security,
    actor: Annotated[str | None, Query(min_length=1)] = None,
    action: Annotated[str | None, Query(min_length=1)] = None,
    since: Annotated[datetime | None, Query(description="ISO time; naive means UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    format: Annotated[Literal["json", "jsonl"], Query()] = "json",
) -> list[AuditOut] | Response:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    entries = [
        AuditOut.of(e)
        for e in await sec.audit.query(actor=actor, action=action, since=since, limit=limit)
    ]
    if format == "json":
        return entries
    lines = "".join(e.model_dump_json() + "\n" for e in entries)
    return Response(lines, media_type="application/x-ndjson")


# ``path``: the users of other tenants have ids such as ``acme/alice``.
@router.get("/api/users/{user_id:path}/export")
async def export_user(
    user_id: str, request: Request, gw: Annotated[Gateway, Depends(gateway)], who: Who
) -> dict[str, Any]:
    sec = security(gw)
    caller = await acting_for(request, gw, who, user_id)
    data = await sec.users.export_user(caller.user)
    if data is None:
        raise NotFound(f"unknown user {user_id!r}", user=user_id)
    data["memory"] = await export_memory(gw, caller.user)
    details = {"conversations": len(data["conversations"]), "memories": len(data["memory"])}
    await sec.audit.record([audit_entry("user.export", caller, caller.user, details)])
    return data


@router.delete("/api/users/{user_id:path}")
async def erase_user(
    user_id: str, request: Request, gw: Annotated[Gateway, Depends(gateway)], who: Who
) -> dict[str, Any]:
    sec = security(gw)
    caller = await acting_for(request, gw, who, user_id)
    memory = await erase_memory(gw, caller.user)  # first: the user's row names the items
    erased = await sec.users.erase_user(caller.user)
    details = {"erased": erased, "memory_erased": memory["erased"]}
    await sec.audit.record([audit_entry("user.delete", caller, caller.user, details)])
    return {"user": caller.user, "erased": erased, "memory": memory}


async def export_memory(gw: Gateway, external_user_id: str) -> list[dict[str, Any]]:
    """What long-term memory holds of the user, with every character it talked to."""
    if gw.memory is None:
        return []
    items = []
    for partition in await private_partitions(gw.store, external_user_id):
        items += await gw.memory.list_items(partition, limit=_EXPORT_MEMORY_LIMIT)
    return [
        {
            "id": item.id,
            "character": item.partition.character_id,
            "text": item.text,
            "kind": item.kind,
            "importance": item.importance,
            "created_at": item.created_at.isoformat(),
            "source_message_ids": list(item.source_message_ids),
        }
        for item in items
    ]


_EXPORT_MEMORY_LIMIT = 1_000_000  # per character: an export leaves nothing out


async def erase_memory(gw: Gateway, external_user_id: str) -> dict[str, Any]:
    """Delete the user's memory items in every partition (with their vectors), and say so."""
    if gw.memory is None:
        return {"erased": False, "reason": "long-term memory is off"}
    user = await gw.store.get_user(external_user_id)
    items = await gw.memory.delete_user(user.id) if user is not None else 0
    return {"erased": True, "items": items}
