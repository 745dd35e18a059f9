"""``personae serve``: one process, or several on one port."""

from __future__ import annotations

import gc
import os
import socket
from typing import Annotated, Any

import typer
import uvicorn

from personae.app import build_app
from personae.cli.shared import ConfigDir, read_settings
from personae.observability.logging import configure_logging


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Processes on one port; more than 1 needs coordination: redis."),
    ] = 1,
    config_dir: ConfigDir = None,
) -> None:
    """Run the server."""
    settings = read_settings(config_dir, host=host, port=port)
    if workers > 1 and settings.coordination.backend == "local":
        raise typer.BadParameter(
            f"{workers} workers need coordination: redis (docs/scale-out.md): with "
            "coordination: local each process would keep its own conversation locks and "
            "events, and two devices of one user could see two different conversations",
            param_hint="--workers",
        )
    configure_logging(settings.log_level, log_content=settings.log_content)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,  # ours is written once a response ends (request_context.py)
        "lifespan": "on",
        "ws": "websockets-sansio",
        "ws_max_size": settings.realtime.max_frame_bytes,
        # Compression costs ~43 KiB of zlib state per connection; chat frames are small.
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": int(settings.realtime.shutdown_grace_s) + 5,
        "ssl_certfile": settings.tls_certfile,
        "ssl_keyfile": settings.tls_keyfile,
    }
    if workers == 1:
        _AnnouncingServer(uvicorn.Config(build_app(settings), **options)).run()
        return
    # Each worker builds its app from the same settings (app/factory.py reads them again).
    if config_dir is not None:
        os.environ["PERSONAE_CONFIG_DIR"] = str(config_dir)
    typer.echo(f"personae: {workers} workers on {settings.host}:{settings.port}", err=True)
    uvicorn.run("personae.app.factory:create_app", factory=True, workers=workers, **options)


class _AnnouncingServer(uvicorn.Server):
    """Says where it listens once the sockets are bound (with ``--port 0``, the real port)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # Everything loaded so far lives as long as the process: keep it out of every future
        # collection, and collect less often. With thousands of connections alive, a full
        # collection otherwise stalls the loop for hundreds of milliseconds at a time.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                scheme = "https" if self.config.is_ssl else "http"
                typer.echo(f"personae listening on {scheme}://{host}:{port}", err=True)
