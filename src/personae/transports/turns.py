"""Admin routes for turn records and replays (docs/replay.md):

- ``GET /api/admin/turns/{turn_id}``: a recorded turn (the reply's message id) as JSON: the
  prompt as sent, its lore and memory, the route through the backends, the stage timings;
- ``POST /api/admin/replays``: re-run a conversation with overrides on a scratch store and
  answer with the side-by-side report (JSON, or the HTML page with ``?format=html``).

Both are admin-only and audited: a record holds a conversation's text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from personae.core.replay import Replays, report_data
from personae.core.turn_record import TurnRecords, record_data
from personae.core.types import Caller
from personae.errors import NotFound
from personae.transports.admin import audit_entry
from personae.transports.auth import admin_caller
from personae.transports.gateway import Gateway, NotReady, gateway

router = APIRouter(tags=["admin"])

AdminCaller = Annotated[Caller, Depends(admin_caller)]
Gw = Annotated[Gateway, Depends(gateway)]


class TurnNotFound(NotFound):
    code = "turn_not_found"


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str = Field(min_length=1, max_length=256)
    variant: str | None = Field(default=None, max_length=512)  # EXPERIMENT:VARIANT
    character_version: str | None = Field(default=None, max_length=128)
    route: list[str] | None = Field(default=None, max_length=16)  # backend names, in order
    params: dict[str, float | int] = Field(default_factory=dict)  # temperature, top_p, ...
    instructions: str | None = Field(default=None, max_length=8000)
    memory_enabled: bool | None = None


def _records(gw: Gw) -> TurnRecords:
    if gw.turn_records is None:
        raise NotReady("turn records are not available on this server")
    return gw.turn_records


def _replays(gw: Gw) -> Replays:
    if gw.replays is None:
        raise NotReady("replays are not available on this server")
    return gw.replays


async def _audit(gw: Gateway, caller: Caller, action: str, target: str, **details: Any) -> None:
    if gw.security is not None:
        await gw.security.audit.record([audit_entry(action, caller, target, details)])


@router.get("/api/admin/turns/{turn_id}")
async def read_turn(turn_id: str, caller: AdminCaller, gw: Gw) -> dict[str, Any]:
    """A recorded turn; 404 when the turn was not recorded (or is gone)."""
    record = await _records(gw).get(turn_id)
    await _audit(gw, caller, "turn.read", turn_id, found=record is not None)
    if record is None:
        raise TurnNotFound(f"no record of turn {turn_id!r} (only a sample of turns is recorded)")
    return record_data(record)


@router.post("/api/admin/replays", response_model=None)
async def run_replay(
    body: ReplayIn,
    caller: AdminCaller,
    gw: Gw,
    fmt: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Response:
    replays = _replays(gw)
    plan = replays.plan(
        body.conversation_id,
        variant=body.variant,
        character_version=body.character_version,
        route=body.route,
        params=body.params,
        instructions=body.instructions,
        memory_enabled=body.memory_enabled,
    )
    await _audit(gw, caller, "replay.run", plan.conversation_id, changes=plan.label)
    report = await replays.run(plan)
    if fmt == "html":
        return HTMLResponse(replays.html(report))
    return JSONResponse(report_data(report))
