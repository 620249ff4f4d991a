"""What ``chat()`` streams to the UI and the CLI, in order.

``TurnStarted`` first, then any of ``Notice``, ``ThinkingToken``, ``AnswerToken``, ``AnswerReset``,
``ToolCalled`` and ``Citations``, and ``Done`` last, or ``TurnFailed`` when the turn could not be
answered. ``Done.answer`` is authoritative: it is the streamed answer after invented citation
numbers were removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from docmind.agent.citations import Passage, SupportReport, cited_json, support_json

MODE_AGENT = "agent"
"""The ReActAgent answered."""
MODE_FALLBACK = "fallback"
"""The model's ReAct output was unusable; it answered once, directly from the retrieved passages."""
MODE_SEARCH = "search"
"""No model is available: the answer is the best passages, labelled as a search result."""


@dataclass(frozen=True)
class TurnStarted:
    """The question is committed; generation starts. Carries the id of a session created for it."""

    session_id: str
    title: str
    question: str = ""


@dataclass(frozen=True)
class Notice:
    """Something the user should know about this answer (no model, no documents, nothing found...)."""

    kind: str
    text: str


@dataclass(frozen=True)
class ThinkingToken:
    text: str


@dataclass(frozen=True)
class AnswerToken:
    text: str


@dataclass(frozen=True)
class AnswerReset:
    """Forget the answer text streamed so far: the agent is trying again."""


@dataclass(frozen=True)
class ToolCalled:
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Citations:
    """The passages the answer cites, each under the number it is cited by."""

    passages: list[Passage]


@dataclass(frozen=True)
class TurnFailed:
    """The turn ended in an error (not the model's malformed ReAct); the question stays stored."""

    session_id: str
    message: str


@dataclass(frozen=True)
class Done:
    session_id: str
    answer: str
    thinking: str
    citations: list[Passage] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    mode: str = MODE_AGENT
    consulted: list[str] = field(default_factory=list)
    """The files of every passage the turn retrieved, cited or not, in order of first retrieval."""
    support: SupportReport | None = None
    """The check of the answer's cited sentences against their passages."""

    def citations_json(self) -> list[dict[str, Any]]:
        """The cited passages with their number and, once checked, ``supported`` and ``support``."""
        return cited_json(self.citations, self.support)

    def to_json(self) -> dict[str, Any]:
        """The ``docmind ask --json`` document."""
        return {
            "session": self.session_id,
            "answer": self.answer,
            "thinking": self.thinking,
            "citations": [{key: c[key] for key in ("source", "page", "text", "number", "supported", "support")
                           if key in c} for c in self.citations_json()],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "mode": self.mode,
            "consulted": self.consulted,
            **support_json(self.support),
        }


ChatEvent = Union[
    TurnStarted, Notice, ThinkingToken, AnswerToken, AnswerReset, ToolCalled, Citations, Done, TurnFailed
]
