"""The sessions API: create, title, list, rename, delete, export, import and search chats.

It imports no LlamaIndex, torch or transformers, so ``docmind sessions ...`` starts fast.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from docmind.agent.turns import SessionBusyError, SessionLock, recover_interrupted
from docmind.storage.db import Database
from docmind.storage.sessions import (
    STATUS_STREAMING,
    ChatLog,
    MessageHit,
    SessionInfo,
    StoredMessage,
    new_session_id,
)

EXPORT_FORMAT = "docmind-session"
EXPORT_VERSION = 1
TITLE_LENGTH = 60


class UnknownSessionError(LookupError):
    """No session has the id the user gave."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No session with id {session_id!r}. Run `docmind sessions list` to see the session ids.")
        self.session_id = session_id


class NothingToRegenerateError(LookupError):
    """The session has no question to answer again."""


class InvalidExportError(ValueError):
    """A file given to import is not a DocMind JSON session export."""


def title_from_question(question: str, limit: int = TITLE_LENGTH) -> str:
    """A short title from the first question: its first line, whitespace collapsed, cut at a word."""
    line = next((part for part in question.strip().splitlines() if part.strip()), "")
    text = re.sub(r"\s+", " ", line).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut.rstrip(" ,;:.") + "…"


def local_time(stamp: str) -> datetime | None:
    """A stored UTC timestamp in this computer's time zone (None when it does not parse)."""
    try:
        return datetime.fromisoformat(stamp).astimezone()
    except (TypeError, ValueError):
        return None


def when_label(stamp: str, today: datetime | None = None) -> str:
    """``today 14:05``, ``3 Dec 09:12`` or ``3 Dec 2025 09:12``: a chat's time as people read it."""
    moment = local_time(stamp)
    if moment is None:
        return stamp
    today = today or datetime.now().astimezone()
    clock = f"{moment:%H:%M}"
    if moment.date() == today.date():
        return f"today {clock}"
    day = f"{moment.day} {moment:%b}" + ("" if moment.year == today.year else f" {moment.year}")
    return f"{day} {clock}"


def chat_label(info: SessionInfo, today: datetime | None = None) -> str:
    """How a chat is named in lists: its title and when it started, so same-titled chats differ."""
    return f"{info.title or 'Untitled chat'} · {when_label(info.created_at, today)}"


def chat_labels(chats: list[SessionInfo], today: datetime | None = None) -> list[str]:
    """``chat_label`` of each chat; chats that would still read the same get ``(2)``, ``(3)``… by age."""
    labels = [chat_label(info, today) for info in chats]
    oldest_first = sorted(range(len(chats)), key=lambda i: (chats[i].created_at, -i))  # listed newest first
    seen: dict[str, int] = {}
    for index in oldest_first:
        seen[labels[index]] = seen.get(labels[index], 0) + 1
        if seen[labels[index]] > 1:
            labels[index] = f"{labels[index]} ({seen[labels[index]]})"
    return labels


class Sessions:
    """The chat sessions in one DocMind database: all of them, or (with ``owner``) one user's.

    Scoped to an owner, another user's session is unknown: ``get``, and with it every method that
    takes a session id, raises ``UnknownSessionError`` for it, and ``list`` and ``search`` leave it out.
    """

    def __init__(self, db: str | Path | Database, owner: str | None = None) -> None:
        self.log = db if isinstance(db, ChatLog) else ChatLog(db)
        self.owner = owner

    def for_owner(self, owner: str | None) -> Sessions:
        """The same database seen by ``owner`` (None: every session, as the desktop app and the CLI see it)."""
        return Sessions(self.log, owner)

    def create(self, title: str = "") -> SessionInfo:
        return self.get(self.log.create_session(title.strip(), owner=self.owner))

    def get(self, session_id: str) -> SessionInfo:
        info = self.log.session(session_id, self.owner)
        if info is None:
            raise UnknownSessionError(session_id)
        return info

    def list(self) -> list[SessionInfo]:
        """All sessions, most recently active first, with their message counts."""
        return self.log.sessions(self.owner)

    def latest(self) -> SessionInfo | None:
        """The chat to reopen when the app is opened again: the most recently active one with messages."""
        return next((s for s in self.list() if s.messages), None)

    def rename(self, session_id: str, title: str) -> SessionInfo:
        self.get(session_id)
        if not self.log.rename(session_id, title.strip()):
            raise UnknownSessionError(session_id)
        return self.get(session_id)

    def delete(self, session_id: str) -> None:
        """Delete a session, its messages and its lock file; refused while it is answering."""
        self.get(session_id)
        lock = SessionLock(self.log, session_id)
        if not lock.try_acquire():
            raise SessionBusyError(f"Session {session_id} is answering a question right now. Stop the answer "
                                   "or wait for it to finish, then delete the session.")
        try:
            deleted = self.log.delete_session(session_id)
        finally:
            lock.release()
            lock.discard()
        if not deleted:
            raise UnknownSessionError(session_id)

    def title_from_first_question(self, session_id: str, question: str) -> None:
        """Give an untitled session the title of its first question."""
        self.log.set_title_if_empty(session_id, title_from_question(question))

    def drop_last_turn(self, session_id: str) -> str:
        """Delete the session's last question and everything after it; return that question.

        Call it with the session lock held (``ChatService.regenerate`` does).
        """
        stored = self.messages(session_id)
        last_question = max((i for i, m in enumerate(stored) if m.role == "user"), default=None)
        if last_question is None:
            raise NothingToRegenerateError("There is no question to answer again yet: ask one first.")
        for _ in range(len(stored) - last_question):
            self.log.delete_at(session_id, -1)
        return stored[last_question].content

    def messages(self, session_id: str) -> list[StoredMessage]:
        """A session's messages, oldest first; an answer cut off by a crash reads as ``interrupted``."""
        self.get(session_id)
        messages = self.log.messages(session_id)
        if any(m.status == STATUS_STREAMING for m in messages) and recover_interrupted(self.log, [session_id]):
            messages = self.log.messages(session_id)
        return messages

    def search(self, query: str, limit: int = 50) -> list[MessageHit]:
        """Full-text search across every session's questions and answers (not the thinking)."""
        return self.log.search(query, limit, self.owner)

    # --- export / import ----------------------------------------------------------------------

    def export_json(self, session_id: str) -> dict[str, Any]:
        """The whole session, citations included, as a JSON-ready dict that ``import_json`` reads back."""
        info = self.get(session_id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "id": info.id,
            "title": info.title,
            "created_at": info.created_at,
            "updated_at": info.updated_at,
            "messages": [_export_message(m) for m in self.messages(session_id)],
        }

    def export_markdown(self, session_id: str) -> str:
        """The session as a Markdown transcript; thinking in collapsed blocks, sources after each answer."""
        info = self.get(session_id)
        lines = [f"# {info.title or 'Untitled chat'}", "", f"_Session `{info.id}`, started {info.created_at}_", ""]
        for m in self.messages(session_id):
            who = {"user": "You", "assistant": "DocMind"}.get(m.role, m.role.capitalize())
            note = " _(interrupted)_" if m.status == "interrupted" else ""
            lines += [f"## {who}{note}", ""]
            if m.thinking:
                lines += ["<details><summary>Thinking</summary>", "", m.thinking.strip(), "", "</details>", ""]
            lines += [m.content.strip(), ""]
            citations = m.extra.get("citations") or []
            if citations:
                lines += ["**Sources**", ""]
                for c in citations:
                    where = Path(c["source"]).name + (f", page {c['page']}" if c.get("page") else "")
                    quote = re.sub(r"\s+", " ", c.get("text", "")).strip()
                    lines.append(f"- [{c.get('number', '?')}] {where} ({c['source']}): “{quote[:300]}”")
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def import_json(self, data: dict[str, Any] | str | Path) -> SessionInfo:
        """Add a session from a JSON export. It gets a new id when its own is already taken."""
        export = _load_export(data)
        session_id = export.get("id") or new_session_id()
        if self.log.session(session_id) is not None:
            session_id = new_session_id()
        messages = [_import_message(m) for m in export["messages"]]

        self.log.create_session(export.get("title", ""), session_id, export.get("created_at"), owner=self.owner)
        self.log.replace(session_id, messages)
        return self.get(session_id)


def _export_message(m: StoredMessage) -> dict[str, Any]:
    return {
        "role": m.role,
        "content": m.content,
        "thinking": m.thinking,
        "status": m.status,
        "tokens": m.tokens,
        "created_at": m.created_at,
        "citations": m.extra.get("citations", []),
    }


def _load_export(data: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise InvalidExportError(
                f"{path} is not JSON ({error}). Import a file made by `docmind sessions export ID --format json`."
            ) from error
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT or not isinstance(data.get("messages"), list):
        raise InvalidExportError(
            "This is not a DocMind session export. Import a file made by `docmind sessions export ID --format json`."
        )
    if data.get("version", 0) > EXPORT_VERSION:
        raise InvalidExportError("This export was made by a newer DocMind; update DocMind to import it.")
    return data


def _import_message(m: Any) -> StoredMessage:
    if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system", "tool"):
        raise InvalidExportError(f"A message in the export is malformed: {str(m)[:80]}")
    extra = {"citations": m["citations"]} if m.get("citations") else {}
    return StoredMessage(
        role=m["role"],
        content=str(m.get("content", "")),
        thinking=str(m.get("thinking", "")),
        tokens=m.get("tokens"),
        status="interrupted" if m.get("status") == "streaming" else m.get("status", "complete"),
        extra=extra,
        created_at=m.get("created_at", ""),
    )
