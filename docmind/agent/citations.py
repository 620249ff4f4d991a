"""Numbered passages for one turn, and honest citations: every [n] in an answer is a passage retrieved in that turn."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
PASSAGE_CHARS = 1200
"""How much of each passage the model reads in a tool observation."""


@dataclass(frozen=True)
class Passage:
    """A passage retrieved in this turn, with the number the answer cites it by."""

    number: int
    source: str
    page: int | None
    text: str
    score: float

    @property
    def where(self) -> str:
        """``report.pdf, page 3`` or ``notes.md``."""
        name = Path(self.source).name
        return f"{name}, page {self.page}" if self.page else name

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "source": self.source, "page": self.page, "text": self.text,
                "score": round(self.score, 4)}


class TurnPassages:
    """Every passage retrieved during one turn, numbered from 1 in order of first retrieval."""

    def __init__(self) -> None:
        self._passages: list[Passage] = []
        self._numbers: dict[tuple[str, int | None, str], int] = {}
        self.searched = False

    def __len__(self) -> int:
        return len(self._passages)

    @property
    def passages(self) -> list[Passage]:
        return list(self._passages)

    def add(self, source: str, page: int | None, text: str, score: float) -> Passage:
        """Number a passage (the same passage found twice keeps its first number)."""
        key = (source, page, text)
        if key in self._numbers:
            return self._passages[self._numbers[key] - 1]
        passage = Passage(len(self._passages) + 1, source, page, text, score)
        self._passages.append(passage)
        self._numbers[key] = passage.number
        return passage

    def get(self, number: int) -> Passage | None:
        return self._passages[number - 1] if 1 <= number <= len(self._passages) else None

    def cited(self, answer: str) -> list[Passage]:
        """The passages ``answer`` cites, in order of first citation."""
        seen: dict[int, Passage] = {}
        for match in _MARKER.finditer(answer):
            for number in _numbers(match.group(1)):
                passage = self.get(number)
                if passage is not None:
                    seen.setdefault(number, passage)
        return list(seen.values())

    def strip_unknown(self, answer: str) -> str:
        """Remove citation numbers that match no passage of this turn, so no citation is invented."""

        def keep(match: re.Match[str]) -> str:
            valid = [n for n in _numbers(match.group(1)) if self.get(n) is not None]
            return "[" + ", ".join(str(n) for n in valid) + "]" if valid else ""

        cleaned = _MARKER.sub(keep, answer)
        return re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned).strip() if cleaned != answer else answer


def _numbers(group: str) -> list[int]:
    return [int(n) for n in re.split(r"\s*,\s*", group)]


def format_passages(passages: list[Passage]) -> str:
    """The tool observation: each passage with its number, file and page, to be cited as [n]."""
    return "\n\n".join(f"[{p.number}] ({p.where})\n{_snippet(p.text, PASSAGE_CHARS)}" for p in passages)


def _snippet(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary after ``limit`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


def search_result_answer(passages: list[Passage], heading: str) -> str:
    """An answer made of the passages themselves, cited, under a heading that says what it is."""
    lines = [heading, ""]
    for p in passages:
        # A passage that starts like a Markdown block (# heading, > quote, list) must stay plain text.
        text = re.sub(r"^(\d*)([#>*+\-.)])", r"\1\\\2", _snippet(p.text, 400))
        lines.append(f"- {text} [{p.number}]")
    return "\n".join(lines)


# --- checking an answer's quotes ---------------------------------------------------------------------------

SUPPORT_THRESHOLD = 0.5
"""A cited sentence (or clause) is supported when at least this share of its content words occur in the cited
passage(s). Words are compared case-folded by their first ``STEM_CHARS`` characters, so "warranty" matches
"warranties" and "quarter" matches "quarterly"; stop words and the citation markers are left out. A verbatim
quote scores 1.0, a claim about a different topic near 0; a close paraphrase keeps about half its words."""
STEM_CHARS = 6
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is "
    "it its may might more most must no not of on or our she should so such than that the their them then there "
    "these they this those to was we were what when where which while who will with would you your also about "
    "after all any because before both each only other over same some very".split()
)


@dataclass(frozen=True)
class ClaimCheck:
    """One cited sentence or clause: the numbers it cites, how well they support it, and why not."""

    text: str
    numbers: tuple[int, ...]
    score: float
    supported: bool
    unknown: tuple[int, ...] = ()
    """Cited numbers that match no passage of the turn (they are removed from the answer)."""

    @property
    def note(self) -> str:
        """What the marker says: ``not found in source [2]`` or that the source was never retrieved."""
        if self.unknown and not [n for n in self.numbers if n not in self.unknown]:
            return f"cites {_label(self.unknown)}, which the search did not return"
        return f"not found in source {_label(n for n in self.numbers if n not in self.unknown)}"

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "numbers": list(self.numbers), "score": round(self.score, 3),
                "supported": self.supported}


@dataclass(frozen=True)
class SupportReport:
    """The support check of one answer: every cited claim, per-citation scores, and the citation coverage."""

    claims: list[ClaimCheck]
    sentences: int
    """Sentences in the answer, cited or not."""

    def score(self, number: int) -> float | None:
        """The weakest support of any claim citing passage ``number`` (None when nothing cites it)."""
        scores = [c.score for c in self.claims if number in c.numbers and number not in c.unknown]
        return min(scores) if scores else None

    @property
    def coverage(self) -> float:
        """The share of the answer's sentences that carry a supported citation (1.0 for an empty answer)."""
        supported_sentences = {c.text for c in self.claims if c.supported}
        return round(len(supported_sentences) / self.sentences, 3) if self.sentences else 1.0

    @property
    def unsupported(self) -> list[ClaimCheck]:
        return [c for c in self.claims if not c.supported]


def _label(numbers: Any) -> str:
    return ", ".join(f"[{n}]" for n in numbers)


def _stems(text: str) -> set[str]:
    words = _WORD.findall(_MARKER.sub(" ", text).casefold())
    return {w[:STEM_CHARS] for w in words if w not in _STOP_WORDS and (len(w) > 1 or w.isdigit())}


def _support(claim: str, passage_words: list[set[str]]) -> float:
    """The share of the claim's content words found in the passages' words (1.0 when it has none)."""
    words = _stems(claim)
    if not words:
        return 1.0  # nothing to check ("See [1].")
    return len(words & set().union(*passage_words)) / len(words)


def _sentences(answer: str) -> list[str]:
    """The answer's sentences; a citation written after the full stop ("… here. [2]") stays with its sentence."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(answer):
        piece = piece.strip()
        leading = re.match(r"^(?:\[[\d,\s]+\]\s*)+", piece)
        if leading and sentences:
            sentences[-1] += " " + leading.group(0).strip()
            piece = piece[leading.end():].strip()
        if piece:
            sentences.append(piece)
    return sentences


def _clauses(sentence: str) -> list[tuple[str, list[int]]]:
    """The cited clauses of a sentence: the text up to each citation marker, with its numbers.

    Text after the last marker (usually just the full stop) belongs to the last clause.
    """
    clauses: list[tuple[str, list[int]]] = []
    last = 0
    for match in _MARKER.finditer(sentence):
        clauses.append((sentence[last : match.start()], _numbers(match.group(1))))
        last = match.end()
    if clauses and sentence[last:].strip():
        text, numbers = clauses[-1]
        clauses[-1] = (text + sentence[last:], numbers)
    return clauses


def check_support(answer: str, passages: TurnPassages) -> SupportReport:
    """Check each cited sentence or clause of ``answer`` against the passages it cites (fast, local).

    Run it on the answer as written, before ``strip_unknown``, so citations of passages that were never
    retrieved are seen (and count as unsupported). ``text`` of each claim is its sentence as the user sees it,
    with those numbers removed.
    """
    claims: list[ClaimCheck] = []
    words = {p.number: _stems(p.text) for p in passages.passages}
    sentences = _sentences(answer)
    for sentence in sentences:
        shown = passages.strip_unknown(sentence)
        for text, numbers in _clauses(sentence):
            cited = [words[n] for n in numbers if n in words]
            unknown = tuple(n for n in numbers if n not in words)
            score = _support(text, cited) if cited else 0.0
            claims.append(ClaimCheck(shown, tuple(numbers), round(score, 3),
                                     bool(cited) and score >= SUPPORT_THRESHOLD, unknown))
    return SupportReport(claims, len(sentences))


def cited_json(cited: list[Passage], report: SupportReport | None) -> list[dict[str, Any]]:
    """The cited passages as stored and shown, each with ``supported`` and ``support`` (0..1) once checked."""
    out = []
    for passage in cited:
        entry = passage.to_json()
        score = report.score(passage.number) if report is not None else None
        if score is not None:
            entry.update(supported=score >= SUPPORT_THRESHOLD, support=round(score, 3))
        out.append(entry)
    return out


def support_json(report: SupportReport | None) -> dict[str, Any]:
    """The answer-level keys of the check: the citation coverage and the claims its sources do not support."""
    if report is None:
        return {}
    return {"citation_coverage": report.coverage,
            "unsupported": [{**claim.to_json(), "note": claim.note} for claim in report.unsupported]}
