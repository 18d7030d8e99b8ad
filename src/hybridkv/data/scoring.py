"""Exact-match scoring after a light normalisation.

Answers are single words or numbers from closed vocabularies, so exact match is the right metric;
the normalisation only forgives surface form ("Red.", " 3 ", "three", "the circle").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

_NUMBER_WORDS: Mapping[str, str] = MappingProxyType(
    {
        word: str(i)
        for i, word in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
    }
)
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces, number words to digits, no leading article.

    A lone "a" is kept: it is also a letter answer of the grid tasks.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens = _PUNCTUATION.sub(" ", text).split()
    tokens = [_NUMBER_WORDS.get(token, token) for token in tokens]
    while len(tokens) > 1 and tokens[0] in _ARTICLES:
        tokens.pop(0)
    return " ".join(tokens)


def score(prediction: str, answer: str) -> bool:
    """True when the prediction equals the answer after normalisation."""
    return normalize_answer(prediction) == normalize_answer(answer)
