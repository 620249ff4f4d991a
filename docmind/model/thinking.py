"""Split a model's ``<think>…</think>`` reasoning from its answer, token by token.

Handles tags split across tokens, a missing open tag (Qwen3-Thinking-2507's template already puts
``<think>`` in the prompt, so the model only emits the closing tag), and thinking that never ends.

Also how long a model may think: ``thinking_budget`` turns the ``thinking_budget`` setting (or, when
unset, about ``THINKING_SECONDS`` at this machine's decode speed) into tokens, and ``thinking_closing``
is the text the engine writes when a thought reaches its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docmind.config import Settings
from docmind.model.text import partial_suffix

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

EMPTY_THOUGHT = OPEN_TAG + "\n\n" + CLOSE_TAG + "\n\n"
"""An empty think block, as Qwen3's template writes it to skip thinking (``enable_thinking=False``)."""
BUDGET_CLOSING = ("\n\nConsidering the limited time, I have to give the solution based on the thinking "
                  "directly now.\n" + CLOSE_TAG + "\n\n")
"""What ends a thought cut by its budget (Qwen's documented budget control for its thinking models)."""

THINKING_SECONDS = 20.0
"""The default budget: about this long thinking before the answer starts."""
MIN_THINKING_TOKENS = 128
"""A shorter thought is not worth having; on a slow machine the default budget takes longer than 20 s."""
MAX_THINKING_TOKENS = 2048
ESTIMATED_WEIGHT_BYTES_PER_SECOND = 10e9
"""Until a decode speed is measured, a decode step is taken to stream all weights at this rate. From
STACK.md: Qwen3-0.6B in bf16 (1.2 GB of weights) decodes at about 8.5 tok/s on 2 CPU cores."""
BYTES_PER_PARAM = {"none": 2.0, "auto": 2.0, "int8-weight": 1.0, "int8-dynamic": 1.0, "int4-weight": 0.5}
UNKNOWN_MODEL_PARAMS_B = 4.0
"""A model DocMind does not list (a local directory) is assumed as large as the default model."""


@dataclass(frozen=True)
class ThinkingBudget:
    """How long the model may think per call: ``tokens`` (what the engine enforces) and, at
    ``decode_tok_s``, about how many ``seconds`` that is."""

    tokens: int
    decode_tok_s: float
    measured: bool
    """False when ``decode_tok_s`` is an estimate from the model's size."""

    @property
    def seconds(self) -> float:
        return self.tokens / self.decode_tok_s

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "seconds": round(self.seconds, 1), "decode_tok_s": round(self.decode_tok_s, 2),
                "measured": self.measured}

    @property
    def label(self) -> str:
        """For the UI, e.g. ``thinks for up to about 20 s (512 tokens)``."""
        if self.tokens == 0:
            return "answers without thinking"
        return f"thinks for up to about {self.seconds:.0f} s ({self.tokens} tokens)"


def estimated_decode_tok_s(settings: Settings) -> float:
    """Decode speed estimated from the chosen model's size and quantization (no measurement)."""
    from docmind.model.registry import resolve_model

    spec = resolve_model(settings).spec
    params_b = spec.params_b if spec is not None else UNKNOWN_MODEL_PARAMS_B
    return ESTIMATED_WEIGHT_BYTES_PER_SECOND / (params_b * 1e9 * BYTES_PER_PARAM.get(settings.quantization, 2.0))


def thinking_budget(settings: Settings, decode_tok_s: float | None = None) -> ThinkingBudget:
    """The thinking budget: the ``thinking_budget`` setting if set, else ``THINKING_SECONDS`` of decoding at
    ``decode_tok_s`` (measured on this machine; estimated from the model's size when None), kept within
    ``MIN_THINKING_TOKENS``..``MAX_THINKING_TOKENS``."""
    measured = decode_tok_s is not None and decode_tok_s > 0
    speed = decode_tok_s if measured else estimated_decode_tok_s(settings)
    if settings.thinking_budget is not None:
        return ThinkingBudget(settings.thinking_budget, speed, measured)
    tokens = round(THINKING_SECONDS * speed)
    return ThinkingBudget(min(max(tokens, MIN_THINKING_TOKENS), MAX_THINKING_TOKENS), speed, measured)


def thinking_closing(budget: int) -> str:
    """What the engine writes to end a thought at ``budget`` tokens: with no thought at all (0), just the
    closing tag, which leaves the same empty think block as ``EMPTY_THOUGHT``."""
    return "\n" + CLOSE_TAG + "\n\n" if budget == 0 else BUDGET_CLOSING


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
