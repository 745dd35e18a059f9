"""OpenTelemetry traces: the core's ``Tracer`` port on the OpenTelemetry SDK, and the ASGI
middleware that starts a server span per HTTP request (docs/operations.md, "Traces").

    tracing = Tracing.from_environment()      # OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*, ...
    service = ChatService(..., tracer=tracing.tracer)
    app.add_middleware(TracingMiddleware, tracing=tracing)
    ...
    tracing.shutdown()                         # flush what is queued

Each runtime has a ``TracerProvider`` of its own (the global one is left alone, so several
apps in one process never share spans). Only W3C ``traceparent``/``tracestate`` are read
from clients and sent to backends: baggage is not forwarded, since a backend may be a
third-party provider. Spans carry ids, names and timings, never message text.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import personae
from personae.core.tracing import Attribute, Span, Tracer
from personae.errors import ConfigurationError

T = TypeVar("T")

PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})  # probes and scrapes: noise
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def trace_id_of(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def _prefixed(attributes: dict[str, Attribute]) -> dict[str, Attribute]:
    return {f"personae.{name}": value for name, value in attributes.items()}


class OtelSpan(Span):
    recording = True

    def __init__(self, tracer: trace.Tracer, span: trace.Span) -> None:
        self._tracer = tracer
        self.span = span
        self._ended = False

    def child(self, name: str, **attributes: Attribute) -> Span:
        parent = trace.set_span_in_context(self.span)
        started = self._tracer.start_span(name, context=parent, attributes=_prefixed(attributes))
        return OtelSpan(self._tracer, started)

    def set(self, **attributes: Attribute) -> None:
        self.span.set_attributes(_prefixed(attributes))

    def fail(self, exc: BaseException) -> None:
        # The exception's type, not its message or traceback: those may quote a prompt.
        name = type(exc).__name__
        self.span.set_attribute("error.type", name)
        self.span.set_status(Status(StatusCode.ERROR, name))

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.end()

    def around(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        return _current_in_each_step(self.span, stream)


async def _current_in_each_step(
    span: trace.Span, stream: AsyncGenerator[T, None]
) -> AsyncGenerator[T, None]:
    # Attached and detached within one step, so always in the same context (the consumer's
    # task may change between steps: Starlette streams a response from a task of its own).
    current = trace.set_span_in_context(span)
    async with aclosing(stream):
        while True:
            token = otel_context.attach(current)
            try:
                item = await anext(stream)
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            yield item


class OtelTracer(Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self.otel = tracer

    def start(self, name: str, **attributes: Attribute) -> Span:
        span = self.otel.start_span(name, attributes=_prefixed(attributes))
        # Log lines of the turn carry the trace's id (the same as the request's, over HTTP).
        structlog.contextvars.bind_contextvars(trace_id=trace_id_of(span))
        return OtelSpan(self.otel, span)


class Tracing:
    """One runtime's tracer provider and what it exports to."""

    def __init__(self, exporter: SpanExporter | None, *, batch: bool = True) -> None:
        service = os.environ.get("OTEL_SERVICE_NAME") or "personae"
        resource = Resource.create(
            {"service.name": service, "service.version": personae.__version__}
        )
        self.provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
        if exporter is not None:
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
        self.tracer = OtelTracer(self.provider.get_tracer("personae", personae.__version__))

    @classmethod
    def from_environment(cls) -> Tracing:
        """The exporter ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (the default; OTLP over
        HTTP, configured by ``OTEL_EXPORTER_OTLP_*``), ``console`` or ``none``."""
        name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return cls(OTLPSpanExporter())
        if name == "console":
            return cls(ConsoleSpanExporter())
        if name == "none":
            return cls(None)
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={name!r}: Personae knows otlp, console and none"
        )

    def shutdown(self) -> None:
        """Export what is queued and stop (blocks up to the exporter's timeout)."""
        self.provider.shutdown()


class TracingMiddleware:
    """A server span per HTTP request, a child of the client's ``traceparent`` if it sent
    one. The request goes on with *our* span as its ``traceparent``, so the log context
    (``RequestContextMiddleware``) takes the trace id from it and every line of the request
    carries the OpenTelemetry trace id."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracer = tracing.tracer.otel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        incoming = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in _TRACE_HEADERS
        }
        method = scope["method"]
        span = self.tracer.start_span(
            method,
            context=PROPAGATOR.extract(incoming),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        )
        current = trace.set_span_in_context(span)
        outgoing: dict[str, str] = {}
        PROPAGATOR.inject(outgoing, context=current)
        scope = dict(scope)
        scope["headers"] = [(n, v) for n, v in headers if n not in _TRACE_HEADERS] + [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in outgoing.items()
        ]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = otel_context.attach(current)
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(token)
            route = getattr(scope.get("route"), "path", None)
            if route is not None:  # a template (/api/users/{id}), not the path: few names
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.end()
