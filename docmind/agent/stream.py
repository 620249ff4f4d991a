"""Split the agent's raw ReAct stream into thinking and answer text as it arrives.

Inside ``<think>…</think>`` is thinking. Outside it, a ReAct step's ``Thought:``/``Action:`` lines
are the scratchpad (shown as thinking too) and the text after ``Answer:`` is the answer. A step
with no ReAct markers at all is an answer (ReActAgent treats it the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docmind.model.text import partial_suffix
from docmind.model.thinking import ThinkParser

ANSWER_MARK = "Answer:"
SCRATCH_MARKS = ("Thought:", "Action:")
_DECIDE_CHARS = max(len(m) for m in (*SCRATCH_MARKS, ANSWER_MARK))


@dataclass
class StepSplitter:
    """One LLM call's stream. ``feed`` returns ``(kind, text)`` pairs, kind ``thinking`` or ``answer``."""

    _think: ThinkParser = field(default_factory=ThinkParser)
    _mode: str = "undecided"  # undecided | scratch | answer
    _buffer: str = ""
    _answer_started: bool = False

    def feed(self, delta: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for piece in self._think.feed(delta):
            if piece.kind == "thinking":
                out.append(("thinking", piece.text))
            else:
                out.extend(self._react(piece.text))
        return out

    def finish(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for piece in self._think.finish():
            out.extend([("thinking", piece.text)] if piece.kind == "thinking" else self._react(piece.text))
        if self._buffer:
            kind = "thinking" if self._mode == "scratch" else "answer"
            out.append((kind, self._buffer))
            self._buffer = ""
        return out

    @property
    def answered(self) -> bool:
        return self._mode == "answer"

    def _react(self, text: str) -> list[tuple[str, str]]:
        self._buffer += text
        out: list[tuple[str, str]] = []
        if self._mode == "undecided":
            head = self._buffer.lstrip()
            if head.startswith(ANSWER_MARK):
                self._mode, self._buffer = "answer", head[len(ANSWER_MARK):].lstrip()
            elif head.startswith(SCRATCH_MARKS):
                self._mode = "scratch"
            elif len(head) >= _DECIDE_CHARS or not any(m.startswith(head) for m in (*SCRATCH_MARKS, ANSWER_MARK)):
                self._mode = "answer"
            else:
                return out
        if self._mode == "scratch":
            index = self._buffer.find(ANSWER_MARK)
            if index < 0:
                keep = partial_suffix(self._buffer, ANSWER_MARK)
                cut = len(self._buffer) - keep
                if cut:
                    out.append(("thinking", self._buffer[:cut]))
                self._buffer = self._buffer[cut:]
                return out
            if index:
                out.append(("thinking", self._buffer[:index]))
            self._mode, self._buffer = "answer", self._buffer[index + len(ANSWER_MARK):].lstrip()
        text, self._buffer = self._buffer, ""
        if not self._answer_started:
            text = text.lstrip()  # the space after "Answer:" may come in a later delta
        if text:
            self._answer_started = True
            out.append(("answer", text))
        return out

