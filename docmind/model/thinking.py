"""Split a model's ``<think>…</think>`` reasoning from its answer, token by token.

Handles tags split across tokens, a missing open tag (Qwen3-Thinking-2507's template already puts
``<think>`` in the prompt, so the model only emits the closing tag), and thinking that never ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docmind.model.text import partial_suffix

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


@dataclass(frozen=True)
class Piece:
    """A stretch of streamed text: ``kind`` is ``thinking`` or ``answer``."""

    kind: str
    text: str


@dataclass
class ThinkParser:
    """Feed text deltas in order; get back thinking and answer pieces as soon as they are certain."""

    in_thinking: bool = False
    """Start inside a think block (the prompt ended with ``<think>``)."""
    thinking: str = ""
    answer: str = ""
    _buffer: str = field(default="", repr=False)
    _seen_text: bool = field(default=False, repr=False)

    def feed(self, delta: str) -> list[Piece]:
        """Consume ``delta``; return the pieces it completes (a tag's partial prefix is held back)."""
        self._buffer += delta
        pieces: list[Piece] = []
        while self._buffer:
            if not self.in_thinking and not self._seen_text and self._buffer.lstrip().startswith(OPEN_TAG):
                self._buffer = self._buffer.lstrip()[len(OPEN_TAG):]
                self.in_thinking = True
                continue
            if self.in_thinking and not self.thinking and self._buffer.lstrip().startswith(OPEN_TAG):
                self._buffer = self._buffer.lstrip()[len(OPEN_TAG):]  # a repeated open tag
                continue
            tag = CLOSE_TAG if self.in_thinking else OPEN_TAG
            index = self._buffer.find(tag)
            if index >= 0:
                self._emit(pieces, self._buffer[:index])
                self._buffer = self._buffer[index + len(tag):]
                self.in_thinking = not self.in_thinking
                continue
            keep = partial_suffix(self._buffer, tag)
            if not self._seen_text and not self.in_thinking and OPEN_TAG.startswith(self._buffer.lstrip()):
                keep = len(self._buffer)  # may still become a leading <think>
            self._emit(pieces, self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep:]
            break
        return pieces

    def finish(self) -> list[Piece]:
        """Flush what is held back at the end of the stream (unterminated thinking stays thinking)."""
        pieces: list[Piece] = []
        self._emit(pieces, self._buffer)
        self._buffer = ""
        return pieces

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if not text:
            return
        if self.in_thinking:
            if not self.thinking:
                text = text.lstrip()
            self.thinking += text
            kind = "thinking"
        else:
            if not self.answer:
                text = text.lstrip()
            self.answer += text
            kind = "answer"
        if text:
            self._seen_text = True
            pieces.append(Piece(kind, text))



def split_thinking(text: str, *, in_thinking: bool = False) -> tuple[str, str]:
    """Split a whole generation into ``(thinking, answer)``, both stripped."""
    if not in_thinking and CLOSE_TAG in text and OPEN_TAG not in text:
        in_thinking = True  # the open tag was in the prompt (Qwen3-Thinking-2507)
    parser = ThinkParser(in_thinking=in_thinking)
    parser.feed(text)
    parser.finish()
    return parser.thinking.strip(), parser.answer.strip()
