"""``/healthz``: the process answers. ``/readyz``: it can serve turns.

The readiness checks (``Gateway.readiness``) name storage, characters, coordination, the
backends (each, and whether any can answer) and every supervised background task
(``task:<name>``). A check's value starts with ``ok``, ``warning`` (reported, not unready:
one backend with an open circuit while the router fails over) or ``error`` (unready: 503).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from personae.transports.gateway import Gateway

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Starting, or a check failed (its value says why)."}},
)
async def readyz(request: Request) -> JSONResponse:
    gw = getattr(request.app.state, "gateway", None)
    if not isinstance(gw, Gateway):
        return JSONResponse({"status": "starting"}, status_code=503)
    checks = await gw.readiness()
    ok = not any(state.startswith("error") for state in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503
    )
