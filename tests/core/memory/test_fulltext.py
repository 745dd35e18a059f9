"""Search words and the reference BM25 ranking of the in-memory store."""

from __future__ import annotations

from personae.core.memory.fulltext import bm25_rank
from personae.core.memory.terms import MAX_QUERY_TERMS, query_terms, words


def test_words_fold_case_and_accents_like_fts5() -> None:
    assert words("Café CRÈME, don't_stop 42!") == ["cafe", "creme", "don", "t", "stop", "42"]


def test_query_terms_drop_function_words_and_repeats() -> None:
    assert query_terms("Where do I live? Where, where?") == ["live"]
    assert query_terms("what is it?") == []
    assert len(query_terms(" ".join(f"w{n}" for n in range(100)))) == MAX_QUERY_TERMS


def test_bm25_prefers_rarer_words_and_shorter_texts() -> None:
    texts = ["the cat sat", "the cat and the long dog story of the cat", "a dog", "nothing"]
    assert bm25_rank("cat", texts) == [0, 1]
    assert bm25_rank("cat dog", texts)[0] == 1  # both words
    assert bm25_rank("?", texts) == []
