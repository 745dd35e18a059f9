"""Okapi BM25 over a handful of texts, in plain Python: the full-text ranking of the in-memory
store, the reference the SQLite store's FTS5 ranking is checked against. Same words as FTS5
(``terms.words``); FTS5 also stems (porter), this does not."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from personae.core.memory.terms import query_terms, words

K1 = 1.2
B = 0.75


def bm25_rank(query: str, texts: Sequence[str]) -> list[int]:
    """Indexes of the ``texts`` holding a query word, best first (ties: earlier first)."""
    terms = query_terms(query)
    if not terms or not texts:
        return []
    docs = [Counter(words(text)) for text in texts]
    lengths = [sum(doc.values()) for doc in docs]
    average = sum(lengths) / len(docs) or 1.0
    frequency = {term: sum(1 for doc in docs if term in doc) for term in terms}
    scored: list[tuple[float, int]] = []
    for index, doc in enumerate(docs):
        score = 0.0
        for term in terms:
            count = doc.get(term, 0)
            if count:
                idf = math.log(1 + (len(docs) - frequency[term] + 0.5) / (frequency[term] + 0.5))
                norm = count + K1 * (1 - B + B * lengths[index] / average)
                score += idf * count * (K1 + 1) / norm
        if score > 0:
            scored.append((score, index))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [index for _, index in scored]
