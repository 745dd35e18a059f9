"""A ChatModel over any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, Ollama,
llama.cpp server, OpenAI, ...), streaming through the official ``openai`` SDK.

No retries here: retrying and falling back belong to the routing layer, which sees every
backend. Errors leave as ``BackendError`` subclasses naming this backend.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any, Self

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from personae.core.ports import ChatModel
from personae.core.types import ChatMessage, ChatRequest, ModelChunk, Role, Usage
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
)
from personae.plugins.specs import BackendConfig

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Servers that need no key still get one: without it the SDK would read OPENAI_API_KEY from the
# environment, and settings are meant to arrive only through BackendConfig.
_NO_KEY = "none"
# OpenAI rejects participant names containing whitespace or any of <|\/>.
_NAME_FORBIDDEN = re.compile(r"[\s<|\\/>]+")


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
        # A read timeout, so it bounds the wait for the first token and every gap after it.
        self._timeout = openai.Timeout(timeout_s, connect=connect_timeout_s)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._context_window = context_window
        self._client: openai.AsyncOpenAI | None = None

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
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key or _NO_KEY,
                timeout=self._timeout,
                max_retries=0,
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open; use it as an async context manager")
        params = request.params
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[_wire_message(message) for message in request.messages],
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) if params.stop else openai.omit,
                seed=params.seed if params.seed is not None else openai.omit,
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc

        parts: list[str] = []
        finish_reason: str | None = None
        usage: Usage | None = None
        try:
            while True:
                try:
                    chunk = await anext(response)
                except StopAsyncIteration:
                    break
                except openai.OpenAIError as exc:
                    raise self._map_error(exc, midway=True) from exc
                except ValueError as exc:  # the SSE data was not JSON
                    raise self._protocol_error(f"unreadable stream event: {exc}") from exc
                text, reason, chunk_usage = self._read_chunk(chunk)
                finish_reason = reason or finish_reason
                usage = chunk_usage or usage
                if text:
                    parts.append(text)
                    yield ModelChunk(text=text)
        finally:
            await response.close()

        if finish_reason is None:
            # Also what a server that ignored stream=True and sent plain JSON looks like.
            raise self._protocol_error("the stream ended without a finish reason")
        if usage is None:
            usage = Usage(
                prompt_tokens=sum(self.count_tokens(m.content) for m in request.messages),
                completion_tokens=self.count_tokens("".join(parts)),
            )
        yield ModelChunk(finish_reason=finish_reason, usage=usage)

    def _read_chunk(self, chunk: ChatCompletionChunk) -> tuple[str, str | None, Usage | None]:
        """Text, finish reason and usage of one chunk. The SDK builds chunks without
        validating them, so a malformed one shows up here as a missing or mistyped field."""
        try:
            usage = None
            if chunk.usage is not None:
                usage = Usage(
                    prompt_tokens=int(chunk.usage.prompt_tokens),
                    completion_tokens=int(chunk.usage.completion_tokens),
                )
            for choice in chunk.choices:
                if choice.index == 0:
                    content = choice.delta.content if choice.delta is not None else None
                    if content is not None and not isinstance(content, str):
                        raise TypeError(f"content is {type(content).__name__}")
                    return content or "", choice.finish_reason, usage
            return "", None, usage
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._protocol_error(f"malformed chunk: {exc}") from exc

    def _protocol_error(self, message: str, **context: Any) -> BackendProtocolError:
        return BackendProtocolError(message, backend=self.name, **context)

    def _map_error(self, exc: openai.OpenAIError, *, midway: bool = False) -> BackendError:
        # APITimeoutError subclasses APIConnectionError, so it is checked first.
        if isinstance(exc, openai.APITimeoutError):
            if "Connect" in type(exc.__cause__).__name__:  # the transport's ConnectTimeout
                message = f"could not connect within {self._connect_timeout_s} s"
            else:
                waited = "the next token" if midway else "an answer"
                message = f"waited {self._timeout_s} s for {waited}"
            return BackendTimeout(message, backend=self.name)
        if isinstance(exc, openai.APIConnectionError):
            cause = f": {exc.__cause__}" if exc.__cause__ else ""
            if midway:
                return BackendUnavailable(f"the stream broke off{cause}", backend=self.name)
            return BackendUnavailable(f"cannot reach {self.base_url}{cause}", backend=self.name)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = f"HTTP {status}: {_server_message(exc)}"
            if status == 429 or status >= 500:
                return BackendUnavailable(message, backend=self.name, status=status)
            return self._protocol_error(message, status=status)
        if isinstance(exc, openai.APIResponseValidationError):
            return self._protocol_error(f"unusable response: {exc.message}")
        if isinstance(exc, openai.APIError):
            # An error event inside an otherwise healthy stream: the server failed midway.
            return BackendUnavailable(f"error in stream: {exc.message}", backend=self.name)
        return self._protocol_error(f"{type(exc).__name__}: {exc}")


def _wire_message(message: ChatMessage) -> ChatCompletionMessageParam:
    name = _NAME_FORBIDDEN.sub("_", message.name) if message.name else None
    match message.role:
        case Role.SYSTEM:
            if name:
                return {"role": "system", "content": message.content, "name": name}
            return {"role": "system", "content": message.content}
        case Role.USER:
            if name:
                return {"role": "user", "content": message.content, "name": name}
            return {"role": "user", "content": message.content}
        case Role.ASSISTANT:
            if name:
                return {"role": "assistant", "content": message.content, "name": name}
            return {"role": "assistant", "content": message.content}


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words: OpenAI-style bodies carry ``{"error": {"message": ...}}``,
    which the SDK has already unwrapped into ``body``."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail")
        if isinstance(message, str) and message:
            return message
    return exc.message
