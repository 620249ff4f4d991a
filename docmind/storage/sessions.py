"""The ``sessions`` and ``messages`` tables: plain SQL, no LlamaIndex import.

``SQLiteChatStore`` adapts this to LlamaIndex; the sessions API and ``docmind sessions ...``
use it directly so that listing chats stays fast to start.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from docmind.storage.db import Database, open_database

STATUS_COMPLETE = "complete"
STATUS_STREAMING = "streaming"
STATUS_INTERRUPTED = "interrupted"


def now() -> str:
    """The current UTC time as ISO 8601 with milliseconds, the format of every chat timestamp."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_session_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class SessionInfo:
    """One chat session as listed to the user."""

    id: str
    title: str
    created_at: str
    updated_at: str
    messages: int


@dataclass
class StoredMessage:
    """One row of ``messages``. ``tokens`` is the model-tokenizer count of ``content``, when known."""

    role: str
    content: str
    thinking: str = ""
    tokens: int | None = None
    status: str = STATUS_COMPLETE
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    id: int | None = None
    session_id: str = ""


@dataclass(frozen=True)
class MessageHit:
    """A full-text search hit in one message."""

    session: str
    title: str
    role: str
    snippet: str
    created_at: str


_MESSAGE_COLUMNS = "id, session_id, role, content, thinking, tokens, status, extra, created_at"


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        content=row["content"],
        thinking=row["thinking"],
        tokens=row["tokens"],
        status=row["status"],
        extra=json.loads(row["extra"]),
        created_at=row["created_at"],
    )


def fts_query(text: str) -> str:
    """Every word of ``text``, quoted, so user text never trips FTS5 syntax (``"``, ``*``, ``-``...)."""
    return " ".join(f'"{word}"' for word in re.findall(r"\w+", text))


class ChatLog:
    """Sessions and their messages in one DocMind database."""

    def __init__(self, db: str | Path | Database) -> None:
        self.db = open_database(db)

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, title: str = "", session_id: str | None = None, created_at: str | None = None,
                       owner: str | None = None) -> str:
        """Insert a new, empty session (of ``owner``, a user name, or nobody's) and return its id."""
        session_id = session_id or new_session_id()
        stamp = created_at or now()
        self.db.execute("INSERT INTO sessions (id, title, created_at, updated_at, owner) VALUES (?, ?, ?, ?, ?)",
                        (session_id, title, stamp, stamp, owner))
        return session_id

    def session(self, session_id: str, owner: str | None = None) -> SessionInfo | None:
        """The session ``session_id``; with ``owner``, only when that user owns it."""
        rows = self.db.read(_SESSION_SELECT + " WHERE s.id = ?" + _OWNED, (session_id, owner, owner))
        return _session(rows[0]) if rows else None

    def sessions(self, owner: str | None = None) -> list[SessionInfo]:
        """Every session (with ``owner``, that user's), most recently active first."""
        rows = self.db.read(_SESSION_SELECT + " WHERE 1" + _OWNED + " ORDER BY s.updated_at DESC, s.rowid DESC",
                            (owner, owner))
        return [_session(row) for row in rows]

    def rename(self, session_id: str, title: str) -> bool:
        return self.db.execute("UPDATE sessions SET title = ? WHERE id = ?", (title, session_id)) > 0

    def set_title_if_empty(self, session_id: str, title: str) -> bool:
        return self.db.execute("UPDATE sessions SET title = ? WHERE id = ? AND title = ''", (title, session_id)) > 0

    def delete_session(self, session_id: str) -> bool:
        """Delete a session and (by cascade) all its messages."""
        return self.db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)) > 0

    def search(self, query: str, limit: int = 50, owner: str | None = None) -> list[MessageHit]:
        """Full-text search over every session's (with ``owner``, that user's) message text (never the
        thinking), best first."""
        match = fts_query(query)
        if not match:
            return []
        rows = self.db.read(
            """
            SELECT m.session_id, s.title, m.role, m.created_at,
                   snippet(messages_fts, 0, '[', ']', '…', 16) AS snippet
            FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid JOIN sessions s ON s.id = m.session_id
            WHERE messages_fts MATCH ?""" + _OWNED + """ ORDER BY bm25(messages_fts), m.id DESC LIMIT ?
            """,
            (match, owner, owner, limit),
        )
        return [MessageHit(r["session_id"], r["title"], r["role"], r["snippet"], r["created_at"]) for r in rows]

    # --- messages -----------------------------------------------------------------------------

    def messages(self, session_id: str) -> list[StoredMessage]:
        """A session's messages, oldest first."""
        rows = self.db.read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY id", (session_id,)
        )
        return [_message(row) for row in rows]

    def context(self, session_id: str) -> list[tuple[int, str, str, int | None]]:
        """``(id, role, content, tokens)`` of the session's complete messages, oldest first: what memory reads."""
        rows = self.db.read(
            "SELECT id, role, content, tokens FROM messages WHERE session_id = ? AND status = ? ORDER BY id",
            (session_id, STATUS_COMPLETE),
        )
        return [tuple(row) for row in rows]

    def set_tokens(self, counts: list[tuple[int, int]]) -> None:
        """Store token counts ``(message id, tokens)`` computed after the fact."""
        if counts:
            self.db.write(lambda conn: conn.executemany(
                "UPDATE messages SET tokens = ? WHERE id = ?", [(tokens, i) for i, tokens in counts]
            ))

    def append(self, session_id: str, *messages: StoredMessage) -> list[int]:
        """Commit messages in one transaction (creating their session if needed); return their row ids."""
        return self.db.write(lambda conn: _insert(conn, session_id, list(messages)))

    def replace(self, session_id: str, messages: Iterable[StoredMessage]) -> None:
        """Make ``messages`` the session's whole history, in one transaction (empty clears it)."""
        messages = list(messages)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            _insert(conn, session_id, messages)

        self.db.write(write)

    def update(self, message_id: int, **fields: Any) -> None:
        """Change some of a message's ``content``, ``thinking``, ``tokens``, ``status``, ``extra``."""
        allowed = {"content", "thinking", "tokens", "status", "extra"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update message fields {sorted(unknown)}")
        if "extra" in fields:
            fields["extra"] = json.dumps(fields["extra"], ensure_ascii=False)
        assignments = ", ".join(f"{name} = ?" for name in fields)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*fields.values(), message_id))
            conn.execute(
                "UPDATE sessions SET updated_at = ? WHERE id = (SELECT session_id FROM messages WHERE id = ?)",
                (now(), message_id),
            )

        self.db.write(write)

    def clear(self, session_id: str) -> list[StoredMessage]:
        """Delete a session's messages (the session stays) and return them."""

        def write(conn: sqlite3.Connection) -> list[StoredMessage]:
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
            conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            return [_message(row) for row in rows]

        return self.db.write(write)

    def delete_at(self, session_id: str, index: int) -> StoredMessage | None:
        """Delete the session's ``index``-th message (Python indexing, so -1 is the last)."""

        def write(conn: sqlite3.Connection) -> StoredMessage | None:
            rows = conn.execute("SELECT id FROM messages WHERE session_id = ? ORDER BY id", (session_id,))
            ids = [row[0] for row in rows]
            try:
                message_id = ids[index]
            except IndexError:
                return None
            row = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            return _message(row)

        return self.db.write(write)

    def keys(self) -> list[str]:
        """Ids of the sessions that hold at least one message."""
        return [r[0] for r in self.db.read("SELECT DISTINCT session_id FROM messages ORDER BY session_id")]

    def mark_streaming_interrupted(self, session_id: str) -> int:
        """Mark answers left ``streaming`` by a process that died as ``interrupted``; return how many."""
        return self.db.execute(
            "UPDATE messages SET status = ? WHERE session_id = ? AND status = ?",
            (STATUS_INTERRUPTED, session_id, STATUS_STREAMING),
        )

    def sessions_with_streaming(self) -> list[str]:
        rows = self.db.read("SELECT DISTINCT session_id FROM messages WHERE status = ?", (STATUS_STREAMING,))
        return [r[0] for r in rows]


_OWNED = " AND (? IS NULL OR s.owner = ?)"
"""Appended to a ``WHERE`` on ``sessions s``: with an owner bound twice, only that user's sessions."""

_SESSION_SELECT = """
    SELECT s.id, s.title, s.created_at, s.updated_at,
           (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS messages
    FROM sessions s
"""


def _session(row: sqlite3.Row) -> SessionInfo:
    return SessionInfo(row["id"], row["title"], row["created_at"], row["updated_at"], row["messages"])


def _insert(conn: sqlite3.Connection, session_id: str, messages: list[StoredMessage]) -> list[int]:
    stamp = now()
    conn.execute("INSERT OR IGNORE INTO sessions (id, title, created_at, updated_at) VALUES (?, '', ?, ?)",
                 (session_id, stamp, stamp))
    ids = []
    for m in messages:
        cursor = conn.execute(
            "INSERT INTO messages (session_id, role, content, thinking, extra, tokens, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                m.role,
                m.content,
                m.thinking,
                json.dumps(m.extra, ensure_ascii=False),
                m.tokens,
                m.status,
                m.created_at or stamp,
            ),
        )
        ids.append(cursor.lastrowid)
    conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (stamp, session_id))
    return ids
