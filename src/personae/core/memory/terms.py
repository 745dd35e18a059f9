"""Words of a text as full-text search sees them: case-folded, accents removed, split at
anything that is not a letter or digit (what SQLite FTS5's ``unicode61 remove_diacritics 2``
tokenizer does), with common English function words left out of queries."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+")
#: A query longer than this is cut to its first distinct words: bounds the cost of a search.
MAX_QUERY_TERMS = 32

_STOPWORDS = """a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing don down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves tell know remember do does did s t m ll re ve d"""
STOPWORDS = frozenset(_STOPWORDS.split())


def words(text: str) -> list[str]:
    """Every word of ``text``, folded, in order."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WORD.findall(stripped.casefold())


def query_terms(text: str) -> list[str]:
    """The distinct words of a question worth searching for, in order, at most
    ``MAX_QUERY_TERMS``. Empty when the text has only function words."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_TERMS]
