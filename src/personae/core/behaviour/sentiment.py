"""A message's sentiment, -1 (hostile) .. 1 (warm): a small lexicon scorer, a heuristic.

It is deterministic, pure Python and fast (a dictionary look-up per word), which is what a
guard evaluated every turn needs; it is not a language model and will misread sarcasm, rare
words and languages other than English. Good enough to tell "you are wonderful" from "I hate
you", which is what behaviour guards such as ``sentiment < -0.4`` ask. How it scores, in the
spirit of VADER (Hutto & Gilbert, 2014), much reduced:

- each known word has a weight (-3 .. 3);
- a negation ("not", "never", "n't", ...) within the three words before it flips and damps it;
- an intensifier ("very", "so", "really", ...) just before it strengthens it by half;
- an exclamation mark strengthens the whole message a little;
- the sum is squashed into -1..1 with ``s / sqrt(s * s + 15)``.
"""

from __future__ import annotations

import math
import re

_POSITIVE = {
    3.0: "adore adorable amazing awesome beautiful brilliant excellent fantastic gorgeous "
    "incredible love loved lovely magnificent marvelous marvellous perfect superb "
    "wonderful",
    2.0: "admire appreciate appreciated best brave charming cheerful clever cute delighted "
    "delightful enjoy enjoyed excited fabulous friend friendly fun funny generous glad "
    "grateful great happy helpful impressive joy kind kindness likes laugh nice "
    "pleased proud sweet thank thanks thankful treasure trust warm welcome",
    1.0: "agree better calm care comfortable cool fine fair good hope hopeful interesting "
    "like liked okay ok polite pretty relaxed respect safe smile smart well wow yes",
}
_NEGATIVE = {
    -3.0: "abhor awful despise disgusting hate hated hateful horrible idiot loathe "
    "pathetic stupid terrible worst",
    -2.0: "angry annoying annoyed bad boring cruel disappointed disappointing dumb fool "
    "furious gross hurt jerk liar lousy mean miserable nasty rude sad shut ugly "
    "useless weird worthless wrong",
    -1.0: "afraid bored confused dislike doubt lonely nervous tired upset worried worse",
}


def _lexicon() -> dict[str, float]:
    words: dict[str, float] = {}
    for table in (_POSITIVE, _NEGATIVE):
        for weight, listed in table.items():
            words.update(dict.fromkeys(listed.split(), weight))
    return words


LEXICON = _lexicon()
NEGATIONS = frozenset(
    str.split(
        "not no never nothing nobody none neither nor cannot without isnt arent wasnt werent "
        "dont doesnt didnt wont wouldnt cant couldnt shouldnt aint"
    )
)
INTENSIFIERS = frozenset(
    str.split("very so really truly extremely totally absolutely incredibly super such too")
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NEGATION_WINDOW = 3
_NEGATION_DAMPING = -0.74  # "not good" is less bad than "bad" (VADER's factor)
_SQUASH = 15.0


def sentiment(text: str) -> float:
    """The sentiment of ``text`` in -1..1, 0.0 when no word in it is known."""
    words = [_plain(w) for w in _WORD.findall(text.lower())]
    total = 0.0
    for index, word in enumerate(words):
        weight = LEXICON.get(word)
        if weight is None:
            continue
        before = words[max(0, index - _NEGATION_WINDOW) : index]
        if index and words[index - 1] in INTENSIFIERS:
            weight *= 1.5
        if any(w in NEGATIONS for w in before):
            weight *= _NEGATION_DAMPING
        total += weight
    if total and "!" in text:
        total *= 1 + min(text.count("!"), 3) * 0.1
    return round(total / math.sqrt(total * total + _SQUASH), 4)


def _plain(word: str) -> str:
    # "don't" -> "dont", "you're" -> "youre": negations are listed without apostrophes.
    return word.replace("'", "") if word.endswith("n't") else word.split("'")[0]
