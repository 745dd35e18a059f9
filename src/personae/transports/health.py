"""``/healthz``: the process answers. ``/readyz``: it can serve turns (storage and backends)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from personae.transports.gateway import Gateway

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    gw = getattr(request.app.state, "gateway", None)
    if not isinstance(gw, Gateway):
        return JSONResponse({"status": "starting"}, status_code=503)
    checks = await gw.readiness()
    ok = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503
    )
