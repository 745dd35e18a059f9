"""An app factory for process managers that run several workers on one port:

    PROMETHEUS_MULTIPROC_DIR=/run/personae-metrics \\
    uvicorn --factory personae.app.factory:create_app --workers 4 --ws websockets-sansio

Each worker reads the settings as ``personae serve`` does (``PERSONAE_CONFIG_DIR`` or the
working directory, then the environment) and builds its own app; docs/operations.md says how
their metrics are merged, and why several workers need the scale-out coordination first
(conversation locks and the event bus are in-process today).
"""

from __future__ import annotations

from fastapi import FastAPI

from personae.app.runtime import build_app
from personae.observability.logging import configure_logging
from personae.settings import load_settings


def create_app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, log_content=settings.log_content)
    return build_app(settings)
