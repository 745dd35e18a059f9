"""structlog set-up: JSON lines when not on a terminal, readable console output when on one.
Standard-library loggers (uvicorn's among them) go through the same renderer.

Every line carries the context bound for the request or turn it belongs to (``trace_id``,
``user``, ``character``, ``conversation``; see docs/operations.md). Message text stays out of
the logs unless ``log_content`` is on: values under the keys in ``CONTENT_KEYS`` are replaced
by their length, and tracebacks never show local variables (they hold messages).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Keys under which a log call would carry what a user or a model wrote.
CONTENT_KEYS = frozenset({"text", "content", "reply", "prompt", "messages"})


def redact_content(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A processor: message text becomes ``<N chars>``."""
    for key in CONTENT_KEYS & event_dict.keys():
        value = event_dict[key]
        event_dict[key] = f"<{len(value)} chars>" if isinstance(value, str) else "<redacted>"
    return event_dict


class HideFrames(logging.Filter):
    """The ``websockets`` protocol (under uvicorn, on the ``uvicorn.error`` logger) logs every
    frame at debug level, and a frame holds what the user wrote."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.msg in ("< %s", "> %s") and record.name.startswith(("uvicorn", "websockets"))
        )


def configure_logging(
    level: str = "info",
    *,
    json: bool | None = None,
    log_content: bool = False,
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """``stream``: where lines go (default stderr); ``cache_loggers=False`` lets tests
    configure logging more than once in a process."""
    as_json = (not (stream or sys.stderr).isatty()) if json is None else json
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not log_content:
        shared.append(redact_content)
    rendering: list[structlog.types.Processor]
    if as_json:
        rendering = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        tracebacks = (
            structlog.dev.RichTracebackFormatter(show_locals=log_content)
            if importlib.util.find_spec("rich") is not None
            else structlog.dev.plain_traceback
        )
        rendering = [structlog.dev.ConsoleRenderer(exception_formatter=tracebacks)]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(stream)
    if not log_content:
        handler.addFilter(HideFrames())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
