"""Deterministic fake embeddings: the same text always gets the same unit vector (seeded from its
SHA-256), so a memory store fed by the fake finds exact repeats and nothing else by meaning."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct


def embed(text: str, dims: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """``float`` (a JSON list) or ``base64`` (little-endian float32, what the openai SDK asks
    for by default)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
