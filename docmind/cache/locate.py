"""Find a cited passage in a page's text, even when that text was extracted differently.

A PDF viewer's text layer and the text DocMind indexed differ in whitespace, line-end hyphenation,
ligatures (``ﬁ``) and case. Both sides are compared as their letters and digits only (Unicode NFKC,
case-folded), so all of those differences vanish. When the passage is not on the page as a whole (it
runs over onto the next page, or the page was re-extracted differently), the best-overlapping span is
found by anchoring short pieces of the passage on the page and keeping the densest aligned group.

The text is given as a list of parts (the text items of a PDF page, or one part for a text document)
and a span comes back as ``(part, start, end)`` ranges within those parts.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

ANCHOR_CHARS = 16
"""Length of the pieces of the passage looked up on the page by the overlap fallback."""
MIN_OVERLAP = 0.3
"""The fallback needs this share of the passage's pieces found at one alignment, else nothing is highlighted."""


@dataclass(frozen=True)
class Located:
    """Where a passage was found: ranges ``(part, start, end)`` in the parts, and whether the match was exact."""

    ranges: list[tuple[int, int, int]]
    exact: bool

    @property
    def found(self) -> bool:
        return bool(self.ranges)


NOT_FOUND = Located([], exact=False)


def _normalised(parts: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The letters and digits of ``parts``, NFKC and case-folded, with each character's ``(part, offset)``."""
    chars: list[str] = []
    origins: list[tuple[int, int]] = []
    for index, part in enumerate(parts):
        for offset, char in enumerate(part):
            if char.isascii():
                if char.isalnum():
                    chars.append(char.lower())
                    origins.append((index, offset))
                continue
            for folded in unicodedata.normalize("NFKC", char).casefold():
                if folded.isalnum():
                    chars.append(folded)
                    origins.append((index, offset))
    return "".join(chars), origins


def normalise(text: str) -> str:
    """``text`` as the matcher compares it: letters and digits only, NFKC, case-folded."""
    return _normalised([text])[0]


def locate(parts: list[str], passage: str) -> Located:
    """Where ``passage`` is in ``parts``: exactly (normalised), else its best-overlapping span, else nowhere."""
    page, origins = _normalised(parts)
    wanted = normalise(passage)
    if not wanted or not page:
        return NOT_FOUND
    start = page.find(wanted)
    if start >= 0:
        return Located(_ranges(parts, origins, start, start + len(wanted)), exact=True)
    span = _best_overlap(page, wanted)
    return Located(_ranges(parts, origins, *span), exact=False) if span else NOT_FOUND


def _best_overlap(page: str, wanted: str) -> tuple[int, int] | None:
    """The page span where most pieces of ``wanted`` line up (same offset from the passage start, give or take)."""
    step = ANCHOR_CHARS // 2
    pieces = range(0, max(len(wanted) - ANCHOR_CHARS, 0) + 1, step)
    hits: list[tuple[int, int]] = []  # (alignment bucket, page position)
    for at in pieces:
        piece = wanted[at : at + ANCHOR_CHARS]
        found = page.find(piece)
        while found >= 0:
            hits.append(((found - at) // ANCHOR_CHARS, found))
            found = page.find(piece, found + 1)
    if not hits:
        return None
    counts = Counter(bucket for bucket, _ in hits)
    best = max(counts, key=lambda bucket: counts[bucket] + counts.get(bucket - 1, 0) + counts.get(bucket + 1, 0))
    aligned = [position for bucket, position in hits if abs(bucket - best) <= 1]
    if len(aligned) < max(1, MIN_OVERLAP * len(pieces)):
        return None
    return min(aligned), min(max(aligned) + ANCHOR_CHARS, len(page))


def _ranges(parts: list[str], origins: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int, int]]:
    """Normalised span ``[start, end)`` as ranges ``(part, start, end)`` of the original parts.

    Each range takes in the punctuation right after it (a sentence's full stop at the end of a line).
    """
    ranges: list[tuple[int, int, int]] = []
    for part, offset in origins[start:end]:
        if ranges and ranges[-1][0] == part:
            ranges[-1] = (part, ranges[-1][1], offset + 1)
        else:
            ranges.append((part, offset, offset + 1))
    return [(part, first, _after_punctuation(parts[part], last)) for part, first, last in ranges]


def _after_punctuation(text: str, end: int) -> int:
    while end < len(text) and not text[end].isspace() and not text[end].isalnum():
        end += 1
    return end
