"""OpenTelemetry traces on a live server, read from the SDK's in-memory span exporter: the
span tree of a turn, the client's ``traceparent`` continued, and our own sent on to an
OpenAI-compatible backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from personae.app import build_app
from personae.errors import BackendUnavailable
from personae.observability.tracing import Tracing
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.llm.fake_openai_server import FakeOpenAIServer, Reply
from tests.observability.conftest import eventually
from tests.transports.conftest import make_settings

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
STAGES = {"open", "skills", "behaviour", "prompt", "generate"}


def ask(url: str, *, headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
    body = {
        "model": "aria",
        "user": "sam",
        "stream": stream,
        "messages": [{"role": "user", "content": "Where to?"}],
    }
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[tuple[str, FakeChatModel]]:
    model = FakeChatModel()
    app = build_app(
        make_settings(tmp_path), backends={"fake": model}, tracing=Tracing(exporter, batch=False)
    )
    with live_server(app) as url:
        yield url, model


def finished(exporter: InMemorySpanExporter, name: str) -> tuple[ReadableSpan, ...]:
    eventually(lambda: any(s.name == name for s in exporter.get_finished_spans()))
    return tuple(exporter.get_finished_spans())


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_is_a_span_tree_under_the_request_continuing_the_clients_trace(
    traced: tuple[str, FakeChatModel], exporter: InMemorySpanExporter, stream: bool
) -> None:
    url, model = traced
    model.enqueue("Set course for Vesta.")
    assert ask(url, headers={"traceparent": TRACEPARENT}, stream=stream).status_code == 200
    spans = finished(exporter, "POST /v1/chat/completions")
    server = by_name(spans, "POST /v1/chat/completions")
    turn = by_name(spans, "turn")
    assert server.context is not None
    assert turn.context is not None
    assert {hex_trace(s) for s in spans} == {CLIENT_TRACE}  # one trace: the client's
    assert parent_of(server) == int(CLIENT_SPAN, 16)
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert parent_of(turn) == server.context.span_id
    children = {s.name for s in spans if parent_of(s) == turn.context.span_id}
    assert children == STAGES
    assert turn.attributes is not None
    assert turn.attributes["personae.character"] == "aria"
    assert turn.attributes["personae.outcome"] == "ok"
    assert turn.attributes["personae.conversation"]
    generate = by_name(spans, "generate")
    assert generate.attributes is not None
    assert generate.attributes["personae.backend"] == "fake"
    # Stages end inside the turn, and the turn inside the request.
    assert server.start_time is not None
    assert turn.start_time is not None
    assert server.end_time is not None
    assert turn.end_time is not None
    assert server.start_time <= turn.start_time
    assert turn.end_time <= server.end_time
    for stage in (s for s in spans if s.name in STAGES):
        assert stage.start_time is not None
        assert stage.end_time is not None
        assert turn.start_time <= stage.start_time
        assert stage.end_time <= turn.end_time


def test_the_log_context_carries_the_otel_trace_id(
    traced: tuple[str, FakeChatModel], exporter: InMemorySpanExporter
) -> None:
    url, model = traced
    model.enqueue("Aye.")
    assert ask(url).status_code == 200  # no traceparent: a new trace
    turn = by_name(finished(exporter, "turn"), "turn")

    def audited() -> list[str]:
        rows = httpx.get(f"{url}/api/admin/audit", params={"action": "model.call"}).json()
        return [row["details"].get("trace_id") for row in rows]

    eventually(lambda: len(audited()) == 1)  # the audit row takes trace_id from the log context
    assert audited() == [hex_trace(turn)]


def test_a_failed_turn_marks_its_spans_as_errors(
    traced: tuple[str, FakeChatModel], exporter: InMemorySpanExporter
) -> None:
    url, model = traced
    model.enqueue("x", error=BackendUnavailable("down", backend="fake"))
    assert ask(url).status_code == 503
    spans = finished(exporter, "POST /v1/chat/completions")
    for name in ("turn", "generate"):
        span = by_name(spans, name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "BackendUnavailable"
    assert by_name(spans, "turn").attributes["personae.outcome"] == "failed"  # type: ignore[index]
    server = by_name(spans, "POST /v1/chat/completions")
    assert server.status.status_code is StatusCode.ERROR


def test_probes_and_scrapes_are_not_traced(
    traced: tuple[str, FakeChatModel], exporter: InMemorySpanExporter
) -> None:
    url, _ = traced
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{url}{path}").status_code == 200
    assert httpx.get(f"{url}/api/characters").status_code == 200
    spans = finished(exporter, "GET /api/characters")
    assert [s.name for s in spans] == ["GET /api/characters"]


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_traceparent_goes_on_to_the_backend_as_the_generate_span(
    tmp_path: Path, upstream: FakeOpenAIServer, exporter: InMemorySpanExporter, stream: bool
) -> None:
    upstream.enqueue(Reply(["Hel", "lo"]))
    settings = make_settings(tmp_path, llm={"base_url": upstream.base_url, "model": "m"})
    app = build_app(settings, tracing=Tracing(exporter, batch=False))
    with live_server(app) as url:
        assert ask(url, headers={"traceparent": TRACEPARENT}, stream=stream).status_code == 200
        spans = finished(exporter, "POST /v1/chat/completions")
    generate = by_name(spans, "generate")
    assert generate.context is not None
    sent = upstream.requests[0]["headers"]
    version, trace_id, parent_id, flags = sent["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert int(parent_id, 16) == generate.context.span_id  # the backend call's own span


def test_no_traceparent_reaches_the_backend_when_tracing_is_off(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> None:
    upstream.enqueue(Reply(["Hi"]))
    settings = make_settings(tmp_path, llm={"base_url": upstream.base_url, "model": "m"})
    with live_server(build_app(settings)) as url:
        assert ask(url, headers={"traceparent": TRACEPARENT}).status_code == 200
    assert "traceparent" not in upstream.requests[0]["headers"]


def test_an_unknown_exporter_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from personae.errors import ConfigurationError

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER"):
        Tracing.from_environment()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    Tracing.from_environment().shutdown()
