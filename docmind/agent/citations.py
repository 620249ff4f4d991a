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
