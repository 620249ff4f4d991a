"""Re-ranking the best fused passages by exact evidence of the question's words.

Fusion sees each passage through two rankings only. The signals here look at the passage itself:
``window``, the IDF-weighted share of the question's terms found together within a few words of each
other; ``phrase``, the share of the question's word pairs ("foreign key", "comma separated") found as
pairs; ``heading``, the share of its terms in the section context (title › headings). Words are
compared after Porter stemming, as FTS5 does. Standard library plus NLTK's stemmer (a dependency of
llama-index-core), a few milliseconds for twenty passages.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from docmind.storage.vectors import stopwords

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Evidence:
    """The exact signals of one passage for one question, each a share in [0, 1]."""

    window: float
    phrase: float
    heading: float


@functools.cache
def _stemmer():  # noqa: ANN202 - nltk has no type hints
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM)


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """``word`` lower-cased and Porter-stemmed (cached: a library repeats its words)."""
    return _stemmer().stem(word.lower())


def content_terms(text: str) -> list[str]:
    """The stemmed words of ``text`` without English stop words, in order."""
    stop = stopwords()
    return [stem(word) for word in WORD.findall(text.lower()) if word not in stop]


def window_share(tokens: list[str], weights: Mapping[str, float], width: int) -> float:
    """The largest weighted share of ``weights``' terms found within any ``width`` consecutive tokens."""
    total = sum(weights.values())
    if not total:
        return 0.0
    counts: Counter[str] = Counter()
    inside = best = 0.0
    for index, token in enumerate(tokens):
        if token in weights:
            if not counts[token]:
                inside += weights[token]
            counts[token] += 1
        if index >= width and tokens[index - width] in weights:
            gone = tokens[index - width]
            counts[gone] -= 1
            if not counts[gone]:
                inside -= weights[gone]
        best = max(best, inside)
    return best / total


def pair_share(tokens: list[str], pairs: list[tuple[str, str]], weights: Mapping[str, float]) -> float:
    """The weighted share of the question's consecutive term pairs that occur side by side in ``tokens``."""
    if not pairs:
        return 0.0
    present = set(zip(tokens, tokens[1:]))
    weight = {pair: weights.get(pair[0], 0.0) + weights.get(pair[1], 0.0) for pair in pairs}
    total = sum(weight.values())
    return sum(w for pair, w in weight.items() if pair in present) / total if total else 0.0


def evidence(question: str, text: str, context: str, weights: Mapping[str, float], width: int) -> Evidence:
    """The exact signals of a passage (``text`` under ``context``) for ``question``; ``weights`` maps each
    stemmed question term to its IDF."""
    asked = content_terms(question)
    tokens = content_terms(text)
    heading = set(content_terms(context))
    total = sum(weights.values())
    return Evidence(
        window=window_share(tokens, weights, width),
        phrase=pair_share(tokens, list(zip(asked, asked[1:])), weights),
        heading=sum(w for term, w in weights.items() if term in heading) / total if total else 0.0,
    )
