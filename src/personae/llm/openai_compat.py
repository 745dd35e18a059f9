"""A ChatModel over any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, Ollama,
llama.cpp server, OpenAI, ...), streaming server-sent events over httpx.

Not through the ``openai`` SDK, which the design first chose here: the SDK builds a model
object for every streamed chunk, and at 300 concurrent streams that alone took over a third
of the server's CPU (py-spy, bench/ws_streaming.py). A chunk is three fields; this module
reads them from the JSON itself (``read_chunk``) and checks their types as it goes. The
official SDK is still what the tests use as a client of Personae's own API.

No retries here: retrying and falling back belong to the routing layer, which sees every
backend. Errors leave as ``BackendError`` subclasses naming this backend.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from typing import Any, Self

import httpx
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from personae.core.ports import ChatModel
from personae.core.types import ChatMessage, ChatRequest, ModelChunk, Usage
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
)
from personae.llm.sse import event_data
from personae.plugins.specs import BackendConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
# OpenAI rejects participant names containing whitespace or any of <|\/>.
_NAME_FORBIDDEN = re.compile(r"[\s<|\\/>]+")
_ERROR_BODY_BYTES = 4096  # of an error answer, enough for its message
# Trace context only: no baggage, which could carry a client's data to a third party.
_TRACE_CONTEXT = TraceContextTextMapPropagator()


def trace_headers() -> dict[str, str] | None:
    """W3C ``traceparent`` (and ``tracestate``) of the current span, when tracing is on: the
    turn makes its ``generate`` span current while the backend runs (core/tracing.py)."""
    headers: dict[str, str] = {}
    _TRACE_CONTEXT.inject(headers)
    return headers or None


class StreamFault(Exception):
    """The server reported an error inside an otherwise healthy stream."""


class OpenAICompatChatModel(ChatModel):
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
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._context_window = context_window
        self._client: httpx.AsyncClient | None = None

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
        midway = False
        try:
            async with self._client.stream(
                "POST", "chat/completions", json=self._body(request), headers=trace_headers()
            ) as response:
                await self._check_answer(response)
                async for data in event_data(response.aiter_lines()):
                    if data == "[DONE]":
                        break
                    text, reason, chunk_usage = read_chunk(json.loads(data))
                    finish_reason = reason or finish_reason
                    usage = chunk_usage or usage
                    if text:
                        midway = True
                        parts.append(text)
                        yield ModelChunk(text=text)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, midway=midway) from exc
        except StreamFault as exc:
            raise BackendUnavailable(f"error in stream: {exc}", backend=self.name) from exc
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

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(message) for message in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    async def _check_answer(self, response: httpx.Response) -> None:
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
        if not kind.startswith("text/event-stream"):
            # Also what a server that ignored stream=True and sent plain JSON looks like.
            raise self._protocol_error(f"expected an event stream, got {kind or 'no type'!r}")

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


def read_chunk(chunk: Any) -> tuple[str, str | None, Usage | None]:
    """Text, finish reason and usage of one ``chat.completion.chunk``; raises ``TypeError``,
    ``KeyError`` or ``ValueError`` when it is not one, ``StreamFault`` for an error event."""
    if not isinstance(chunk, dict):
        raise TypeError(f"an event is {type(chunk).__name__}, not an object")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamFault(str(message))
    usage = None
    if (counted := chunk.get("usage")) is not None:
        usage = Usage(int(counted["prompt_tokens"]), int(counted["completion_tokens"]))
    choices = chunk["choices"]
    if not isinstance(choices, list):
        raise TypeError(f"choices is {type(choices).__name__}")
    for choice in choices:
        if choice.get("index", 0) == 0:
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise TypeError(f"delta is {type(delta).__name__}")
            content = delta.get("content")
            if content is not None and not isinstance(content, str):
                raise TypeError(f"content is {type(content).__name__}")
            reason = choice.get("finish_reason")
            if reason is not None and not isinstance(reason, str):
                raise TypeError(f"finish_reason is {type(reason).__name__}")
            return content or "", reason, usage
    return "", None, usage


def _wire_message(message: ChatMessage) -> dict[str, str]:
    wire = {"role": message.role.value, "content": message.content}
    if message.name:
        wire["name"] = _NAME_FORBIDDEN.sub("_", message.name)
    return wire


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
