"""The FastAPI application: routers, error handlers and request limits. What it serves comes
from a ``Gateway`` that the composition root installs in ``app.state`` during its lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp

import personae
from personae.transports import (
    admin,
    channels_http,
    character_media,
    character_uploads,
    experiments,
    groups,
    health,
    memory_api,
    openai_api,
    rest,
    turns,
    web_ui,
    websocket,
)
from personae.transports.body_limit import BodyLimitMiddleware
from personae.transports.errors import install_error_handlers
from personae.transports.gateway import Gateway
from personae.transports.request_context import RequestContextMiddleware

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class PersonaeApp(FastAPI):
    """FastAPI with ``/ws`` served ahead of the middleware stack (transports/websocket.py)."""

    def build_middleware_stack(self) -> ASGIApp:
        return websocket.WebSocketLane(super().build_middleware_stack())


def create_http_app(
    *, lifespan: Lifespan, max_body_bytes: int, max_upload_bytes: int | None = None
) -> FastAPI:
    app = PersonaeApp(
        title="Personae",
        version=personae.__version__,
        summary="A self-hosted gateway for AI characters.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    uploads = {character_uploads.PATH: max_upload_bytes or max_body_bytes}
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes, uploads=uploads)
    app.add_middleware(RequestContextMiddleware)  # outermost of ours: every line has a trace_id
    app.include_router(health.router)
    app.include_router(openai_api.router)
    app.include_router(rest.router)
    app.include_router(admin.router)
    app.include_router(experiments.router)
    app.include_router(channels_http.router)
    app.include_router(character_uploads.router)
    app.include_router(character_media.router)
    app.include_router(groups.router)
    app.include_router(memory_api.router)
    app.include_router(turns.router)
    web_ui.mount(app)  # the chat page at /, the dashboard at /admin
    app.add_api_route(
        "/metrics", metrics, methods=["GET"], tags=["health"], response_class=PlainTextResponse
    )
    return app


async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format); 404 when turned off."""
    gw = getattr(request.app.state, "gateway", None)
    if not isinstance(gw, Gateway):
        return Response("the server is starting\n", status_code=503, media_type="text/plain")
    if gw.metrics is None:
        return Response("metrics are turned off\n", status_code=404, media_type="text/plain")
    body, content_type = await gw.metrics()
    return Response(body, media_type=content_type)
