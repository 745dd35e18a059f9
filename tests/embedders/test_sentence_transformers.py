"""The packaged all-MiniLM-L6-v2 through SentenceTransformerEmbedder (real model: slow)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from personae.embedders.sentence_transformers import SentenceTransformerEmbedder
from personae.errors import InvalidInput

pytestmark = pytest.mark.slow


async def test_vectors_are_normalised_and_similar_texts_are_near(
    minilm: SentenceTransformerEmbedder,
) -> None:
    vectors = np.array(
        await minilm.embed(
            ["My sister lives in Lisbon.", "Where does my sister live?", "The printer is jammed."]
        )
    )
    assert vectors.shape == (3, minilm.dimension) == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


async def test_a_long_text_is_read_to_its_end_not_truncated(
    minilm: SentenceTransformerEmbedder,
) -> None:
    padding = " ".join(["We chatted about the weather and the traffic on the way home."] * 40)
    assert minilm.max_tokens < 400 < len(padding.split())
    ending = "Finally, my grandmother taught me to bake sourdough bread."
    with_end, without_end, query = await minilm.embed(
        [f"{padding} {ending}", padding, "baking sourdough bread with grandmother"]
    )
    assert np.dot(with_end, query) > np.dot(without_end, query) + 0.02
    assert np.isclose(np.linalg.norm(with_end), 1.0, atol=1e-5)


async def test_concurrent_calls_queue_on_the_worker_and_each_gets_its_answer(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = [f"note number {n} about gardening" for n in range(8)]
    together = await asyncio.gather(*(minilm.embed([t]) for t in texts))
    batched = await minilm.embed(texts)
    assert np.allclose([v[0] for v in together], batched, atol=1e-5)


async def test_blank_texts_and_an_unopened_model_are_refused(
    minilm: SentenceTransformerEmbedder,
) -> None:
    with pytest.raises(InvalidInput):
        await minilm.embed(["fine", " "])
    assert await minilm.embed([]) == []
    with pytest.raises(RuntimeError, match="not open"):
        await SentenceTransformerEmbedder().embed(["hello"])
