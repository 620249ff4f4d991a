"""Chat messages as the Gradio Chatbot shows them, from agent events (live) or stored messages (reload).

Thinking and tool calls are "thoughts" (messages with a ``metadata`` title), collapsible blocks; the
sources follow the answer as one block, titled with the cited files, that opens to the numbered passages.
"""

from __future__ import annotations

import html
import re
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
from docmind.agent.citations import support_json
from docmind.storage.sessions import STATUS_INTERRUPTED, StoredMessage
from docmind.ui.viewer import viewer_url

INTERRUPTED = "_(stopped before the answer was finished)_"
QUOTE_CHARS = 400
"""A cited passage is shown up to this many characters."""
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def citation_link(citation: dict[str, Any], label: str) -> str:
    """``label`` as a link that opens the cited passage in the document viewer."""
    url = html.escape(viewer_url(citation["source"], citation.get("page"), citation.get("text")))
    title = html.escape(f"Open {where(citation['source'], citation.get('page'))} at the passage")
    return f'<a class="docmind-cite" href="{url}" title="{title}">{html.escape(label)}</a>'


def linked_answer(answer: str, citations: list[dict[str, Any]], unsupported: list[dict[str, Any]] = ()) -> str:
    """``answer`` with every ``[n]`` a link to its passage, and a marker after each claim its source does not support."""
    by_number = {c["number"]: c for c in citations if "number" in c}

    def link(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*,\s*", match.group(1))]
        if not all(n in by_number for n in numbers):
            return match.group(0)
        return "[" + ", ".join(citation_link(by_number[n], str(n)) for n in numbers) + "]"

    marks: dict[int, str] = {}
    for claim in unsupported:
        at = answer.find(claim.get("text", ""))
        if claim.get("text") and at >= 0:
            note = html.escape(claim.get("note", "not found in the cited source"))
            marks[at + len(claim["text"])] = (f' <span class="docmind-unsupported" title="{note.capitalize()}">⚠'
                                              f'<span class="docmind-sr-only"> ({note})</span></span>')
    out, last = [], 0
    for at in sorted(marks):
        out.append(_MARKER.sub(link, answer[last:at]) + marks[at])
        last = at
    out.append(_MARKER.sub(link, answer[last:]))
    return "".join(out)


def where(source: str, page: int | None) -> str:
    """``report.pdf · page 3`` or ``notes.md``."""
    name = Path(source).name or source
    return f"{name} · page {page}" if page else name


def sources_message(citations: list[dict[str, Any]], consulted: list[str] | None = None) -> list[dict[str, Any]]:
    """The answer's sources, one click away: a block titled with the cited files that opens to the passages.

    It is an ordinary message (full-size text), so it reads as the end of the answer it follows. An answer
    that cites nothing still says which documents were read for it (``consulted``).
    """
    if not citations:
        if not consulted:
            return []
        names = ", ".join(where(source, None) for source in consulted)
        return [{"role": "assistant",
                 "content": f"Documents consulted ({len(consulted)}), none cited in this answer: {names}"}]
    files = list(dict.fromkeys(where(c["source"], c.get("page")) for c in citations))
    entries = []
    for citation in citations:
        quote = " ".join(citation.get("text", "").split())
        if len(quote) > QUOTE_CHARS:
            quote = quote[:QUOTE_CHARS].rsplit(" ", 1)[0] + "…"
        label = f"[{citation.get('number', '?')}] {where(citation['source'], citation.get('page'))}"
        doubt = " · ⚠ the answer's words were not found in this passage" if citation.get("supported") is False else ""
        entries.append(f"**{citation_link(citation, label)}**{doubt}\n\n> {quote}\n\n<small>{citation['source']}</small>")
    summary = f"Sources ({len(citations)}): {', '.join(files)}"
    body = "\n\n".join(entries)
    return [{"role": "assistant", "content": f"<details class=\"docmind-sources\"><summary>{summary}</summary>\n\n"
                                             f"{body}\n\n</details>"}]


def thinking_message(text: str, done: bool, seconds: float | None = None) -> dict[str, Any]:
    """The model's thinking as a closed block: ``Thinking… 12 s`` while it thinks, then ``Thinking``.

    Gradio opens a "pending" block, so a live one is marked "done" too: it stays closed until clicked.
    """
    metadata: dict[str, Any] = {"title": "Thinking", "status": "done"}
    if not done:
        metadata["title"] = f"Thinking… {int(seconds or 0)} s"
    elif seconds is not None:
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
            history.append({"role": "assistant", "content": linked_answer(
                content, m.extra.get("citations") or [], m.extra.get("unsupported") or [])})
            history.extend(sources_message(m.extra.get("citations") or [], m.extra.get("consulted") or []))
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
    consulted: list[str] = field(default_factory=list)
    support: dict[str, Any] = field(default_factory=dict)
    """``citation_coverage`` and the ``unsupported`` claims, once the answer is checked."""
    mode: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: bool = False
    stopped: bool = False
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    thinking_started: float | None = None
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
            if self.thinking_started is None:
                self.thinking_started = time.monotonic()
            self.thinking += event.text
        elif isinstance(event, AnswerToken):
            if self.thinking_started is not None and self.thinking_seconds is None:
                self.thinking_seconds = time.monotonic() - self.thinking_started
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
            self.citations = event.citations_json()
            self.support = support_json(event.support)
            self.consulted = event.consulted
            self.mode = event.mode
            self.prompt_tokens, self.completion_tokens = event.prompt_tokens, event.completion_tokens
            self.done = True

    def messages(self) -> list[dict[str, Any]]:
        """The turn as Chatbot messages (question first, once known: a regenerated turn learns it on start)."""
        out: list[dict[str, Any]] = [{"role": "user", "content": self.question}] if self.question else []
        if self.thinking.strip():
            finished = self.done or self.stopped or bool(self.answer)
            seconds = self.thinking_seconds
            if not finished and self.thinking_started is not None:
                seconds = time.monotonic() - self.thinking_started
            out.append(thinking_message(self.thinking, finished, seconds))
        for tool in self.tools:
            out.append({"role": "assistant", "content": tool,
                        "metadata": {"title": "Searched your documents", "status": "done"}})
        parts = [] if self.done else [f"_{notice}_" for notice in self.notices]  # Done.answer carries them
        if self.answer:
            parts.append(linked_answer(self.answer, self.citations, self.support.get("unsupported", [])))
        if self.stopped:
            parts.append(INTERRUPTED)
        if self.error:
            parts.append(f"⚠ {self.error}")
        if parts:
            out.append({"role": "assistant", "content": "\n\n".join(parts)})
        elif not self.done:
            out.append({"role": "assistant", "content": "", "metadata": {"title": "Working…", "status": "pending"}})
        out.extend(sources_message(self.citations, self.consulted))
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
            **self.support,
        }
