"""A LlamaIndex chat store on the ``sessions`` and ``messages`` tables, keyed by session id.

``get_messages`` returns the messages as they were stored: the same role, text and
``additional_kwargs``. Two kwargs get their own columns: ``thinking`` (a non-empty text, never
part of ``content``) and ``tokens`` (the model-tokenizer count, so memory never re-tokenizes
history); the others (citations, say) are kept as JSON in ``extra``. DocMind's own bookkeeping
(``status``, row id, ``created_at``) never enters ``additional_kwargs``, where an LLM integration
could forward it to a server: DocMind reads it through ``chat_log.messages(key)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore

from docmind.storage.db import Database
from docmind.storage.sessions import ChatLog, StoredMessage


def to_stored(message: ChatMessage) -> StoredMessage:
    """The row for a LlamaIndex message (a new, complete one)."""
    extra = dict(message.additional_kwargs)
    thinking = extra.get("thinking")
    thinking = extra.pop("thinking") if isinstance(thinking, str) and thinking else ""
    tokens = extra.get("tokens")
    tokens = extra.pop("tokens") if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    return StoredMessage(
        role=message.role.value,
        content=message.content or "",
        thinking=thinking,
        tokens=tokens,
        extra=json.loads(json.dumps(extra, ensure_ascii=False, default=str)),
    )


def to_chat_message(stored: StoredMessage) -> ChatMessage:
    """The LlamaIndex message for a row: its text and kwargs, without DocMind's bookkeeping."""
    kwargs: dict[str, Any] = dict(stored.extra)
    if stored.thinking:
        kwargs["thinking"] = stored.thinking
    if stored.tokens is not None:
        kwargs["tokens"] = stored.tokens
    return ChatMessage(role=stored.role, content=stored.content, additional_kwargs=kwargs)


class SQLiteChatStore(BaseChatStore):
    """Chat history per session in the DocMind database, shared safely by several processes.

    ``set_messages`` replaces the history in one transaction (an empty list clears it; the new rows
    are ``complete`` and stamped now) and ``add_message`` creates the session when it does not
    exist yet. The async methods run the
    sync ones in a worker thread, so they never block the event loop.
    """

    db_path: str
    _log: ChatLog = PrivateAttr()

    def __init__(self, db: str | Path | Database, **kwargs: Any) -> None:
        log = ChatLog(db)
        super().__init__(db_path=str(log.db.path), **kwargs)
        self._log = log

    @classmethod
    def class_name(cls) -> str:
        return "SQLiteChatStore"

    @property
    def chat_log(self) -> ChatLog:
        """DocMind's own API on the same rows: sessions, and messages with their status, id and time."""
        return self._log

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        self._log.replace(key, [to_stored(m) for m in messages])

    def get_messages(self, key: str) -> list[ChatMessage]:
        return [to_chat_message(m) for m in self._log.messages(key)]

    def add_message(self, key: str, message: ChatMessage) -> None:
        self._log.append(key, to_stored(message))

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        removed = self._log.clear(key)
        return [to_chat_message(m) for m in removed] if removed else None

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        removed = self._log.delete_at(key, idx)
        return to_chat_message(removed) if removed else None

    def delete_last_message(self, key: str) -> ChatMessage | None:
        return self.delete_message(key, -1)

    def get_keys(self) -> list[str]:
        return self._log.keys()
