"""Chat messages as the Gradio Chatbot shows them, from agent events (live) or stored messages (reload).

Thinking, tool calls and each cited passage are "thoughts" (messages with a ``metadata`` title): they
render as collapsible blocks, so a numbered citation opens to the passage with its file and page.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmind.agent.events import (
    AnswerReset,
    AnswerToken,
    ChatEvent,
    Citations,
    Done,
    Notice,
    ThinkingToken,
    ToolCalled,
    TurnFailed,
    TurnStarted,
)
from docmind.storage.sessions import STATUS_INTERRUPTED, StoredMessage

INTERRUPTED = "_(stopped before the answer was finished)_"
_ids = itertools.count(1)


def where(source: str, page: int | None) -> str:
    """``report.pdf · page 3`` or ``notes.md``."""
    name = Path(source).name or source
    return f"{name} · page {page}" if page else name


def citation_messages(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A collapsed "Sources" block holding one collapsible block per numbered passage."""
    if not citations:
        return []
    group = f"sources-{next(_ids)}"
    messages: list[dict[str, Any]] = [
        {"role": "assistant", "content": "", "metadata": {"title": f"Sources ({len(citations)})", "id": group,
                                                          "status": "done"}}
    ]
    for citation in citations:
        title = f"[{citation.get('number', '?')}] {where(citation['source'], citation.get('page'))}"
        messages.append({
            "role": "assistant",
            "content": f"{citation.get('text', '').strip()}\n\n`{citation['source']}`",
            "metadata": {"title": title, "parent_id": group, "status": "done"},
        })
    return messages


def thinking_message(text: str, done: bool, seconds: float | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"title": "Thinking", "status": "done" if done else "pending"}
    if seconds is not None:
        metadata["duration"] = round(seconds, 1)
    return {"role": "assistant", "content": text.strip(), "metadata": metadata}


def history_from_stored(messages: list[StoredMessage]) -> list[dict[str, Any]]:
    """A saved session as Chatbot messages."""
    history: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user":
            history.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            if m.thinking.strip():
                history.append(thinking_message(m.thinking, done=True))
            content = m.content
            if m.status == STATUS_INTERRUPTED:
                content = f"{content}\n\n{INTERRUPTED}".strip()
            history.append({"role": "assistant", "content": content})
            history.extend(citation_messages(m.extra.get("citations") or []))
    return history


@dataclass
class TurnView:
    """One turn being streamed: the user's question plus everything the agent has sent so far."""

    question: str
    session_id: str = ""
    thinking: str = ""
    answer: str = ""
    notices: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    mode: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: bool = False
    stopped: bool = False
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    thinking_seconds: float | None = None

    def apply(self, event: ChatEvent) -> None:
        """Fold one agent event into the view."""
        if isinstance(event, TurnStarted):
            self.session_id = event.session_id
            self.question = event.question or self.question
        elif isinstance(event, TurnFailed):
            self.session_id = event.session_id
            self.error = event.message
        elif isinstance(event, ThinkingToken):
            self.thinking += event.text
        elif isinstance(event, AnswerToken):
            if self.thinking and self.thinking_seconds is None:
                self.thinking_seconds = time.monotonic() - self.started
            self.answer += event.text
        elif isinstance(event, AnswerReset):
            self.answer = ""
        elif isinstance(event, Notice):
            self.notices.append(event.text)
        elif isinstance(event, ToolCalled):
            query = event.arguments.get("query") or ", ".join(f"{k}={v}" for k, v in event.arguments.items())
            self.tools.append(f"{event.tool}: {query}" if query else event.tool)
        elif isinstance(event, Citations):
            self.citations = [p.to_json() for p in event.passages]
        elif isinstance(event, Done):
            self.session_id = event.session_id
            self.answer = event.answer
            self.thinking = event.thinking or self.thinking
            self.citations = [p.to_json() for p in event.citations]
            self.mode = event.mode
            self.prompt_tokens, self.completion_tokens = event.prompt_tokens, event.completion_tokens
            self.done = True

    def messages(self) -> list[dict[str, Any]]:
        """The turn as Chatbot messages (question first, once known: a regenerated turn learns it on start)."""
        out: list[dict[str, Any]] = [{"role": "user", "content": self.question}] if self.question else []
        if self.thinking.strip():
            finished = self.done or self.stopped or bool(self.answer)
            out.append(thinking_message(self.thinking, finished, self.thinking_seconds))
        for tool in self.tools:
            out.append({"role": "assistant", "content": tool,
                        "metadata": {"title": "Searched your documents", "status": "done"}})
        parts = [] if self.done else [f"_{notice}_" for notice in self.notices]  # Done.answer carries them
        if self.answer:
            parts.append(self.answer)
        if self.stopped:
            parts.append(INTERRUPTED)
        if self.error:
            parts.append(f"⚠ {self.error}")
        if parts:
            out.append({"role": "assistant", "content": "\n\n".join(parts)})
        elif not self.done:
            out.append({"role": "assistant", "content": "", "metadata": {"title": "Working…", "status": "pending"}})
        out.extend(citation_messages(self.citations))
        return out

    def result(self) -> dict[str, Any]:
        """The ``/chat`` API's streamed document (the keys of ``docmind ask --json``, plus progress)."""
        return {
            "session": self.session_id,
            "answer": self.answer,
            "thinking": self.thinking,
            "citations": self.citations,
            "notices": self.notices,
            "mode": self.mode,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "done": self.done,
            "error": self.error,
        }
