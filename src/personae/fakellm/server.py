"""Serve the fake backend with uvicorn and say where it listens (``--port 0`` picks a port)."""

from __future__ import annotations

import logging
import resource
import socket
import sys

import uvicorn

from personae.fakellm.app import FakeLLM

ANNOUNCEMENT = "fake-llm listening on http://{host}:{port}"
# What uvicorn logs when a fault cuts a response short on purpose.
_EXPECTED = "ASGI callable returned without completing response."


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _EXPECTED


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for listener in self.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                print(ANNOUNCEMENT.format(host=host, port=port), file=sys.stderr, flush=True)


def raise_open_files(wanted: int = 1 << 16) -> None:
    """Benchmarks hold thousands of streams: lift the soft open-files limit toward the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(
    fake: FakeLLM, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> None:
    """Run until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    raise_open_files()
    config = uvicorn.Config(
        fake,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    logging.getLogger("uvicorn.error").addFilter(_DropExpected())  # after Config sets logging up
    _AnnouncingServer(config).run()
