"""Durability of a turn: the question is committed before generation, the answer as it streams.

A turn holds its session's lock file for as long as it runs. The operating system releases the
lock when the process dies, even by ``kill -9``, so whoever takes the lock next knows that any
answer still marked ``streaming`` in that session was cut off, and marks it ``interrupted``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from docmind.storage.sessions import (
    STATUS_COMPLETE,
    STATUS_INTERRUPTED,
    STATUS_STREAMING,
    ChatLog,
    StoredMessage,
)

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
"""How often a streaming answer is written to disk (what a crash can lose at most)."""
LOCK_WAIT_SECONDS = 2.0


class SessionBusyError(RuntimeError):
    """Another turn of the same session is running (in this or another DocMind process)."""


def lock_path(log_: ChatLog, session_id: str) -> Path:
    return log_.db.path.parent / "locks" / f"session-{session_id}.lock"


class SessionLock:
    """The cross-process lock of one session, held for the length of a turn."""

    def __init__(self, chat_log: ChatLog, session_id: str) -> None:
        self.path = lock_path(chat_log, session_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.session_id = session_id
        self._lock = FileLock(self.path, thread_local=False)

    async def acquire(self, timeout: float = LOCK_WAIT_SECONDS) -> None:
        try:
            await asyncio.to_thread(self._lock.acquire, timeout=timeout)
        except Timeout as error:
            raise SessionBusyError(
                f"Session {self.session_id} is still answering another question (in this or another DocMind "
                "window). Wait for that answer to finish, or ask in a new session."
            ) from error

    def try_acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        self._lock.release()

    def discard(self) -> None:
        """Remove the lock file of a deleted session (best effort: another process may hold it open)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            log.debug("lock file %s left behind: %s", self.path, error)


def recover_interrupted(chat_log: ChatLog, session_ids: list[str] | None = None) -> int:
    """Mark answers left ``streaming`` by a dead process as ``interrupted``; return how many.

    A session whose lock is held is answering right now and is left alone.
    """
    fixed = 0
    for session_id in session_ids if session_ids is not None else chat_log.sessions_with_streaming():
        lock = SessionLock(chat_log, session_id)
        if lock.try_acquire():
            try:
                fixed += chat_log.mark_streaming_interrupted(session_id)
            finally:
                lock.release()
    if fixed:
        log.info("marked %d cut-off answers as interrupted", fixed)
    return fixed


class TurnRecorder:
    """Writes one turn to the session as it happens. Call it with the session lock held."""

    def __init__(self, chat_log: ChatLog, session_id: str) -> None:
        self.log = chat_log
        self.session_id = session_id
        self.answer_id: int | None = None
        self._flushed_at = 0.0
        self._flushed: tuple[str, str] = ("", "")

    async def start(self, question: str, question_tokens: int | None) -> None:
        """Commit the question and an empty ``streaming`` answer in one transaction (in a worker thread)."""

        def write() -> list[int]:
            self.log.mark_streaming_interrupted(self.session_id)
            return self.log.append(
                self.session_id,
                StoredMessage(role="user", content=question, tokens=question_tokens),
                StoredMessage(role="assistant", content="", status=STATUS_STREAMING),
            )

        self.answer_id = (await asyncio.to_thread(write))[1]

    async def progress(self, answer: str, thinking: str) -> None:
        """Write the partial answer: its first words at once, then at most every ``FLUSH_SECONDS``."""
        if time.monotonic() - self._flushed_at < FLUSH_SECONDS or (answer, thinking) == self._flushed:
            return
        self._flushed_at = time.monotonic()
        self._flushed = (answer, thinking)
        await asyncio.to_thread(self.log.update, self.answer_id, content=answer, thinking=thinking)

    async def finish(self, answer: str, thinking: str, tokens: int | None, extra: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.log.update, self.answer_id,
            content=answer, thinking=thinking, tokens=tokens, status=STATUS_COMPLETE, extra=extra,
        )

    async def interrupt(self, answer: str, thinking: str, extra: dict[str, Any] | None = None) -> None:
        """Keep what was streamed, marked ``interrupted``.

        The write runs in a worker thread and is shielded: it completes even when the task that
        awaits it (a stopped turn) is cancelled again meanwhile.
        """
        if self.answer_id is None:
            return
        fields: dict[str, Any] = {"content": answer, "thinking": thinking, "status": STATUS_INTERRUPTED}
        if extra is not None:
            fields["extra"] = extra
        await asyncio.shield(asyncio.ensure_future(asyncio.to_thread(self.log.update, self.answer_id, **fields)))
