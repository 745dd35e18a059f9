"""A ChatModel over any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, Ollama,
llama.cpp server, OpenAI, ...), streaming server-sent events over httpx.

Not through the ``openai`` SDK, which the design first chose here: the SDK builds a model
object for every streamed chunk, and at 300 concurrent streams that alone took over a third
of the server's CPU (py-spy, bench/ws_streaming.py). A chunk is three fields; this module
reads them from the JSON itself (``openai_wire.read_chunk``) and checks their types as it
goes. The official SDK is still what the tests use as a client of Personae's own API.

Tools: the request's ``tools`` are sent in OpenAI's format and the streamed ``tool_calls``
pieces pass on as ``ModelChunk.tool_calls``, checked to make whole calls by the end of the
stream. ``options: {stream: false}`` asks for whole completions instead (for servers that
cannot stream tool calls); ``options: {tools: false}`` declares a server that cannot call
tools at all, so none are offered to it.

No retries here: retrying and falling back belong to the routing layer, which sees every
backend. Errors leave as ``BackendError`` subclasses naming this backend.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any, Self

import httpx
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from personae.core.ports import ChatModel
from personae.core.tool_calls import ToolCallAssembler, ToolCallError
from personae.core.types import ChatRequest, ModelChunk, Usage
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
)
from personae.llm.openai_wire import (
    StreamFault,
    read_chunk,
    read_completion,
    wire_message,
    wire_tool,
)
from personae.llm.sse import event_data
from personae.plugins.specs import BackendConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
_ERROR_BODY_BYTES = 4096  # of an error answer, enough for its message
# Trace context only: no baggage, which could carry a client's data to a third party.
_TRACE_CONTEXT = TraceContextTextMapPropagator()


def trace_headers() -> dict[str, str] | None:
    """W3C ``traceparent`` (and ``tracestate``) of the current span, when tracing is on: the
    turn makes its ``generate`` span current while the backend runs (core/tracing.py)."""
    headers: dict[str, str] = {}
    _TRACE_CONTEXT.inject(headers)
    return headers or None


class OpenAICompatChatModel(ChatModel):
    supports_tools = True  # unless built with ``tools=False``

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        context_window: int | None = None,
        tools: bool = True,
        streaming: bool = True,
    ) -> None:
        self.name = name
        self.supports_tools = tools
        self.streaming = streaming
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._context_window = context_window
        self._client: httpx.AsyncClient | None = None
        self._url: httpx.URL | None = None  # chat/completions, resolved once

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        if not config.model:
            raise ConfigurationError(
                f"backend {config.name!r} (openai) needs a model name", backend=config.name
            )
        window = config.options.get("context_window")
        return cls(
            name=config.name,
            model=config.model,
            base_url=config.base_url or OPENAI_BASE_URL,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            context_window=int(window) if window is not None else None,
            tools=_flag(config.options, "tools"),
            streaming=_flag(config.options, "stream"),
        )

    def __repr__(self) -> str:
        return (
            f"OpenAICompatChatModel(name={self.name!r}, model={self.model!r},"
            f" base_url={self.base_url!r})"
        )

    @property
    def context_window(self) -> int | None:
        return self._context_window

    async def open(self) -> None:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url.rstrip("/") + "/",
                headers=headers,
                # A read timeout, so it bounds the wait for the first token and every gap.
                timeout=httpx.Timeout(self._timeout_s, connect=self._connect_timeout_s),
                # No connection cap here: the routing layer bounds each backend's concurrent
                # generations (llm/pool.py), and a second cap would only queue behind it.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
            )
            # As httpx joins a relative path to base_url, once: per request, parsing and
            # merging the URL cost half as much as encoding the whole prompt.
            base = self._client.base_url
            self._url = base.copy_with(raw_path=base.raw_path + b"chat/completions")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open; use it as an async context manager")
        parts: list[str] = []
        finish_reason: str | None = None
        usage: Usage | None = None
        calls = ToolCallAssembler()  # only to check that the pieces make whole calls
        midway = False
        answer = self._events(request) if self.streaming else self._completion(request)
        try:
            async with aclosing(answer) as chunks:
                async for chunk in chunks:
                    finish_reason = chunk.finish_reason or finish_reason
                    usage = chunk.usage or usage
                    if chunk.tool_calls:
                        calls.feed(chunk.tool_calls)
                    if chunk.text or chunk.tool_calls:
                        midway = True
                        parts.append(chunk.text)
                        # Finish reason and usage go on the last chunk alone (ChatModel.stream).
                        if chunk.finish_reason is not None or chunk.usage is not None:
                            chunk = ModelChunk(text=chunk.text, tool_calls=chunk.tool_calls)
                        yield chunk
            calls.calls()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, midway=midway) from exc
        except StreamFault as exc:
            raise BackendUnavailable(f"error in stream: {exc}", backend=self.name) from exc
        except ToolCallError as exc:
            raise self._protocol_error(f"broken tool call: {exc}") from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # not the JSON we read
            raise self._protocol_error(f"malformed stream event: {exc}") from exc

        if finish_reason is None:
            raise self._protocol_error("the stream ended without a finish reason")
        if usage is None:
            usage = Usage(
                prompt_tokens=sum(self.count_tokens(m.content) for m in request.messages),
                completion_tokens=self.count_tokens("".join(parts)),
            )
        yield ModelChunk(finish_reason=finish_reason, usage=usage)

    async def _events(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        assert self._client is not None
        assert self._url is not None
        async with self._client.stream(
            "POST", self._url, json=self._body(request), headers=trace_headers()
        ) as response:
            await self._check_answer(response, "text/event-stream")
            async for data in event_data(response.aiter_lines()):
                if data == "[DONE]":
                    break
                yield read_chunk(json.loads(data))

    async def _completion(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        assert self._client is not None
        assert self._url is not None
        async with self._client.stream(
            "POST", self._url, json=self._body(request), headers=trace_headers()
        ) as response:
            await self._check_answer(response, "application/json")
            yield read_completion(json.loads(await response.aread()))

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [wire_message(message) for message in request.messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if self.streaming:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if request.tools and self.supports_tools:
            body["tools"] = [wire_tool(tool) for tool in request.tools]
            body["tool_choice"] = request.tool_choice
        return body

    async def _check_answer(self, response: httpx.Response, expected: str) -> None:
        if response.status_code >= 400:
            body = b""
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) >= _ERROR_BODY_BYTES:
                    break
            status = response.status_code
            message = f"HTTP {status}: {_server_message(body[:_ERROR_BODY_BYTES])}"
            if status == 429 or status >= 500:
                raise BackendUnavailable(message, backend=self.name, status=status)
            raise self._protocol_error(message, status=status)
        kind = response.headers.get("content-type", "")
        if not kind.startswith(expected):
            # Also what a server that ignored stream=True and sent plain JSON looks like.
            raise self._protocol_error(f"expected {expected}, got {kind or 'no type'!r}")

    def _transport_error(self, exc: httpx.HTTPError, *, midway: bool) -> BackendError:
        if isinstance(exc, httpx.ConnectTimeout):
            return BackendTimeout(
                f"could not connect within {self._connect_timeout_s} s", backend=self.name
            )
        if isinstance(exc, httpx.TimeoutException):
            waited = "the next token" if midway else "an answer"
            return BackendTimeout(f"waited {self._timeout_s} s for {waited}", backend=self.name)
        if isinstance(exc, httpx.ConnectError):
            return BackendUnavailable(f"cannot reach {self.base_url}: {exc}", backend=self.name)
        return BackendUnavailable(f"the stream broke off: {exc}", backend=self.name)

    def _protocol_error(self, message: str, **context: Any) -> BackendProtocolError:
        return BackendProtocolError(message, backend=self.name, **context)


def _flag(options: Mapping[str, Any], key: str) -> bool:
    """A yes/no backend option, on unless set off (YAML gives a bool, variables a string)."""
    value = options.get(key, True)
    if isinstance(value, str):
        return value.strip().lower() not in {"false", "no", "off", "0"}
    return bool(value)


def _server_message(body: bytes) -> str:
    """The server's own words: OpenAI-style bodies carry ``{"error": {"message": ...}}``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:300] or "no details"
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            if isinstance(message, str) and message:
                return message
        if isinstance(error, str) and error:
            return error
    return json.dumps(parsed)[:300]
