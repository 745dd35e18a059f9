"""The web UI: the chat page at ``/``, the operator dashboard at ``/admin`` and their assets
under ``/ui`` (plain HTML, CSS and ES modules shipped inside the package, so running needs no
build step and no CDN). The pages hold no data: everything comes from the REST API and the
WebSocket with the user's own key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

from personae.core.types import Caller
from personae.transports.auth import self_caller

WEB = Path(__file__).with_name("web")

# Defence in depth behind the pages' own escaping: only our own scripts and styles run, and
# nothing may frame the pages. 'self' covers ws:/wss: to the same host (CSP level 3).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def chat_page() -> FileResponse:
    return FileResponse(WEB / "index.html", headers=HEADERS)


@router.get("/admin")
async def dashboard_page() -> FileResponse:
    return FileResponse(WEB / "admin.html", headers=HEADERS)


class WhoAmI(BaseModel):
    user: str
    role: str
    tenant: str
    admin: bool


@router.get("/ui/whoami")
async def whoami(caller: Annotated[Caller, Depends(self_caller)]) -> WhoAmI:
    """Who the key signs in as, so the pages know whether to offer the dashboard without
    probing an admin route (a refused probe is an error in the browser's console)."""
    who = caller.principal
    return WhoAmI(user=caller.user, role=who.role.value, tenant=who.tenant, admin=who.is_admin)


def mount(app: FastAPI) -> None:
    """Serve the pages and their assets on ``app``."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=WEB), name="ui")
