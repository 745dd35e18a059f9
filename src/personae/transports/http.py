"""The FastAPI application: routers, error handlers and request limits. What it serves comes
from a ``Gateway`` that the composition root installs in ``app.state`` during its lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

import personae
from personae.transports import health, openai_api, rest, websocket
from personae.transports.body_limit import BodyLimitMiddleware
from personae.transports.errors import install_error_handlers

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_http_app(*, lifespan: Lifespan, max_body_bytes: int) -> FastAPI:
    app = FastAPI(
        title="Personae",
        version=personae.__version__,
        summary="A self-hosted gateway for AI characters.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.include_router(health.router)
    app.include_router(openai_api.router)
    app.include_router(rest.router)
    app.include_router(websocket.router)
    return app
