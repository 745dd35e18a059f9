"""An ``Embedder`` over any OpenAI-compatible ``/v1/embeddings`` server (OpenAI, vLLM, Ollama,
llama.cpp server, ...), through the official ``openai`` SDK.

No retries here (the caller's job queues the items again). Errors leave as ``BackendError``
subclasses naming this backend; a malformed answer (wrong count, wrong dimension, not
numbers) is a ``BackendProtocolError`` and nothing of it is returned. Vectors are normalised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import openai

from personae.core.ports import Embedder
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
)

_NO_KEY = "none"  # keeps the SDK from reading OPENAI_API_KEY from the environment


class OpenAICompatEmbedder(Embedder):
    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        name: str = "embeddings",
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.model_name = model
        self.base_url = base_url
        #: None: learnt from the server at ``open()`` by embedding one word.
        self.dimension = dimension or 0
        self.batch_size = batch_size
        self._api_key = api_key
        self._timeout = openai.Timeout(timeout_s, connect=connect_timeout_s)
        self._timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatEmbedder(model={self.model_name!r}, base_url={self.base_url!r})"

    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key or _NO_KEY,
            timeout=self._timeout,
            max_retries=0,
        )
        if not self.dimension:
            try:
                (probe,) = await self._request(["dimension probe"])
            except BaseException:
                await self.close()
                raise
            self.dimension = len(probe)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        for text in texts:
            if not text.strip():
                raise InvalidInput("cannot embed an empty or whitespace-only text")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(await self._request(list(texts[start : start + self.batch_size])))
        return vectors

    async def _request(self, batch: list[str]) -> list[list[float]]:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open; use it as an async context manager")
        try:
            response = await self._client.embeddings.create(
                model=self.model_name, input=batch, encoding_format="float"
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        return self._read(response, len(batch))

    def _read(self, response: Any, expected: int) -> list[list[float]]:
        try:
            rows = sorted(response.data, key=lambda row: int(row.index))
            vectors = [[float(x) for x in row.embedding] for row in rows]
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._protocol_error(f"malformed embeddings response: {exc}") from exc
        if len(vectors) != expected:
            raise self._protocol_error(f"asked for {expected} embeddings, got {len(vectors)}")
        normalised = []
        for vector in vectors:
            if self.dimension and len(vector) != self.dimension:
                raise self._protocol_error(
                    f"expected {self.dimension}-dimensional vectors, got {len(vector)}"
                )
            norm = math.sqrt(sum(x * x for x in vector))
            if not vector or not math.isfinite(norm) or norm == 0:
                raise self._protocol_error("an embedding is empty, zero or not finite")
            normalised.append([x / norm for x in vector])
        return normalised

    def _protocol_error(self, message: str, **context: Any) -> BackendProtocolError:
        return BackendProtocolError(message, backend=self.name, **context)

    def _map_error(self, exc: openai.OpenAIError) -> BackendError:
        # APITimeoutError subclasses APIConnectionError, so it is checked first.
        if isinstance(exc, openai.APITimeoutError):
            return BackendTimeout(f"no answer within {self._timeout_s} s", backend=self.name)
        if isinstance(exc, openai.APIConnectionError):
            cause = f": {exc.__cause__}" if exc.__cause__ else ""
            return BackendUnavailable(f"cannot reach {self.base_url}{cause}", backend=self.name)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = f"HTTP {status}: {exc.message}"
            if status == 429 or status >= 500:
                return BackendUnavailable(message, backend=self.name, status=status)
            return self._protocol_error(message, status=status)
        return self._protocol_error(f"{type(exc).__name__}: {exc}")
