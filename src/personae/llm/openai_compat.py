"""A ChatModel over any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, Ollama,
llama.cpp server, OpenAI, ...), streaming server-sent events over aiohttp.

Over aiohttp, not httpx: under load (bench/gateway_overhead.py, 100 turns/s) httpx, httpcore
and anyio took ~44 % of the server's CPU (py-spy), pure-Python work per request and per
streamed line. aiohttp parses HTTP in C and reads a line from its buffer in one call.
bench/turn_cpu.py ``--paths backend`` (the service turn over this client and a
``personae fake-llm`` streaming 20 tokens): 5,323 -> 3,008 µs of CPU per turn, the event
loop's share 3,760 -> 1,738; what the client adds to the in-process ``service`` path fell
from ~3,100 to ~900 µs (docs/benchmarks.md). One ``ClientSession`` per backend, opened in
``open()``; proxies from the environment are looked up there once (aiohttp's ``trust_env``
does it per request, on a thread). Lines end in LF or CRLF (a bare CR is not a line end here).
The stream is read as it arrives, every event a read brings at once (``llm/sse.py``), and a run
of text chunks in one read passes on as one chunk: a server that fell behind catches up.

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
import os
import ssl
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Any, Self

import aiohttp
import certifi
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from yarl import URL

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
from personae.llm.sse import EventDecoder
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
        self._session: aiohttp.ClientSession | None = None
        self._url = URL(base_url.rstrip("/") + "/chat/completions")  # parsed once
        self._proxy: URL | None = None  # from the environment, looked up in open()
        self._proxy_headers: dict[str, str] | None = None  # of a CONNECT through it
        self._headers: dict[str, str] = {}  # of every request, set in open()
        self._answers: set[aiohttp.ClientResponse] = set()  # being read, for close()

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
        if self._session is None:
            # Each request's own headers, not the session's: aiohttp copies a session's
            # headers to a proxy, which would get the API key as its Proxy-Authorization.
            self._headers = {"Content-Type": "application/json"}
            if self._api_key:
                self._headers["Authorization"] = f"Bearer {self._api_key}"
            self._proxy, credentials = _environment_proxy(self._url)
            self._proxy_headers = None
            if credentials is not None:  # HTTPS: on the CONNECT; plain HTTP: on each request
                if self._url.scheme == "https":
                    self._proxy_headers = {"Proxy-Authorization": credentials}
                else:
                    self._headers["Proxy-Authorization"] = credentials
            tls = _tls_context() if self._url.scheme == "https" else True
            self._session = aiohttp.ClientSession(
                # No connection cap here: the routing layer bounds each backend's concurrent
                # generations (llm/pool.py), and a second cap would only queue behind it.
                connector=aiohttp.TCPConnector(limit=0, ssl=tls),
                # A read timeout, so it bounds the wait for the first token and every gap.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_timeout_s, sock_read=self._timeout_s
                ),
                auto_decompress=True,  # gzip/deflate answers (a non-streamed one may be)
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            # aiohttp closes the connections, but a body being read under one would wait on
            # for data (until sock_read): ending each answer wakes its reader with an error.
            for response in list(self._answers):
                response.close()
            await session.close()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        if self._session is None:
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
        except aiohttp.ClientError as exc:
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
        async with self._answer(request, "text/event-stream") as response:
            decoder = EventDecoder()
            async for piece in response.content.iter_any():  # whatever has arrived
                chunks, done = _read_events(decoder.feed(piece))
                for chunk in chunks:
                    yield chunk
                if done:
                    return
            for chunk in _read_events(decoder.end())[0]:
                yield chunk

    async def _completion(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        async with self._answer(request, "application/json") as response:
            yield read_completion(json.loads(await response.read()))

    @asynccontextmanager
    async def _answer(
        self, request: ChatRequest, expected: str
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The answer to ``request``, checked to be a success of the ``expected`` type.
        Leaving releases the connection, or closes it when the answer was not read to its end
        (so a turn cancelled midway stops the backend generating)."""
        async with self._post(request) as response:
            self._answers.add(response)
            try:
                await self._check_answer(response, expected)
                yield response
            finally:
                self._answers.discard(response)

    def _post(self, request: ChatRequest) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        assert self._session is not None
        trace = trace_headers()
        # Serialized once, as httpx did it: compact, UTF-8, no NaN.
        body = json.dumps(
            self._body(request), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        return self._session.post(
            self._url,
            data=body,
            headers=self._headers if trace is None else {**self._headers, **trace},
            proxy=self._proxy,
            proxy_headers=self._proxy_headers,
        )

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

    async def _check_answer(self, response: aiohttp.ClientResponse, expected: str) -> None:
        if response.status >= 400:
            body = b""
            while len(body) < _ERROR_BODY_BYTES:
                piece = await response.content.read(_ERROR_BODY_BYTES - len(body))
                if not piece:
                    break
                body += piece
            status = response.status
            message = f"HTTP {status}: {_server_message(body)}"
            if status == 429 or status >= 500:
                raise BackendUnavailable(message, backend=self.name, status=status)
            raise self._protocol_error(message, status=status)
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith(expected):
            # Also what a server that ignored stream=True and sent plain JSON looks like.
            raise self._protocol_error(f"expected {expected}, got {kind or 'no type'!r}")

    def _transport_error(self, exc: aiohttp.ClientError, *, midway: bool) -> BackendError:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return BackendTimeout(
                f"could not connect within {self._connect_timeout_s} s", backend=self.name
            )
        if isinstance(exc, aiohttp.ServerTimeoutError):
            waited = "the next token" if midway else "an answer"
            return BackendTimeout(f"waited {self._timeout_s} s for {waited}", backend=self.name)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return BackendUnavailable(f"cannot reach {self.base_url}: {exc}", backend=self.name)
        # Server disconnected, payload cut short, connection reset: aiohttp's messages can be
        # empty, so the kind of failure is named too.
        return BackendUnavailable(
            f"the stream broke off: {type(exc).__name__}: {exc}", backend=self.name
        )

    def _protocol_error(self, message: str, **context: Any) -> BackendProtocolError:
        return BackendProtocolError(message, backend=self.name, **context)


def _read_events(events: list[str]) -> tuple[list[ModelChunk], bool]:
    """The chunks of the events one read brought, and whether ``[DONE]`` was among them.
    Consecutive chunks of plain text become one: a server that fell behind catches up by
    handling a run of tokens as one delta, while one that keeps up still sees each token as
    it comes (a read then holds one event)."""
    chunks: list[ModelChunk] = []
    texts: list[str] = []  # plain text waiting to be merged
    done = False
    for data in events:
        if data == "[DONE]":
            done = True
            break
        chunk = read_chunk(json.loads(data))
        if chunk.text and not chunk.tool_calls and chunk.finish_reason is None and not chunk.usage:
            texts.append(chunk.text)
            continue
        if texts:
            chunks.append(ModelChunk(text="".join(texts)))
            texts.clear()
        chunks.append(chunk)
    if texts:
        chunks.append(ModelChunk(text="".join(texts)))
    return chunks, done


def _environment_proxy(url: URL) -> tuple[URL | None, str | None]:
    """The proxy that ``HTTP(S)_PROXY``/``ALL_PROXY`` name for ``url``, unless ``NO_PROXY``
    exempts it (what httpx honoured), and the credentials in its URL as a header value."""
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None, None
    proxies = urllib.request.getproxies_environment()
    named = proxies.get(url.scheme) or proxies.get("all")
    if not named:
        return None, None
    proxy = URL(named if "://" in named else f"http://{named}")
    if proxy.user is None:
        return proxy, None
    return proxy.with_user(None), aiohttp.encode_basic_auth(proxy.user, proxy.password or "")


def _tls_context() -> ssl.SSLContext:
    """The certificates httpx used: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else
    certifi's bundle (a slim image may have no system store)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
    return ssl.create_default_context(cafile=certifi.where())


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
