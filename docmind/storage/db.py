"""The one connection policy every DocMind connection follows.

WAL, ``busy_timeout``, ``synchronous=NORMAL``, ``foreign_keys=ON``; writes run in
``BEGIN IMMEDIATE`` transactions, retried with jittered backoff when SQLite reports
the database busy or locked. Each thread gets its own connection, closed when the thread ends.
Every ``sqlite3`` error leaves this module as a ``StorageError``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tenacity import before_sleep_log, retry, retry_if_exception, stop_after_delay, wait_random_exponential

from docmind.storage.errors import ReadOnlyError, StorageError, translate

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
RETRY_SECONDS = 60


def _is_busy(error: BaseException) -> bool:
    if not isinstance(error, sqlite3.OperationalError):
        return False
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(error) or "busy" in str(error)


def _lower(text: object) -> object:
    """Python's ``str.lower`` for SQL (SQLite's ``lower`` folds ASCII only)."""
    return text.lower() if isinstance(text, str) else text


_retry_busy = retry(
    retry=retry_if_exception(_is_busy),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    stop=stop_after_delay(RETRY_SECONDS),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)


class _ThreadConnection:
    """Holds one thread's connection in a ``threading.local``: when the thread ends, this goes and the
    connection is closed (by a ``weakref.finalize``, which also covers ``Database.close``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _close(conn: sqlite3.Connection, open_connections: set[sqlite3.Connection], lock: threading.RLock) -> None:
    with lock:
        open_connections.discard(conn)
    conn.close()


class Database:
    """A DocMind SQLite file: one connection per thread, migrated on first use."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: set[sqlite3.Connection] = set()
        self._lock = threading.RLock()  # re-entrant: a finalizer may run while this thread holds it
        from docmind.storage.migrations import migrate

        migrate(self)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened with the DocMind pragmas."""
        holder = getattr(self._local, "holder", None)
        if holder is None:
            conn = self._open()
            holder = self._local.holder = _ThreadConnection(conn)
            with self._lock:
                self._connections.add(conn)
            weakref.finalize(holder, _close, conn, self._connections, self._lock)
        return holder.conn

    @property
    def open_connections(self) -> int:
        """How many connections are open now (one per live thread that used this database)."""
        with self._lock:
            return len(self._connections)

    def _open(self) -> sqlite3.Connection:
        if not self.path.parent.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ReadOnlyError(f"Cannot create the data dir {self.path.parent}: {error.strerror}.") from error
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            mode = self._retrying(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if mode != "wal":
                log.warning("%s: journal mode is %s, not wal", self.path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.create_function("py_lower", 1, _lower, deterministic=True)
        except sqlite3.Error as error:
            raise translate(error, self.path) from error
        return conn

    @staticmethod
    @_retry_busy
    def _retrying(fn: Callable[[], T]) -> T:
        return fn()

    def read(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run one query and return all its rows."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise translate(error, self.path) from error

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a ``BEGIN IMMEDIATE`` transaction, retried while the database is busy."""
        try:
            return self._retrying(lambda: self._transaction(fn))
        except sqlite3.Error as error:
            raise translate(error, self.path) from error

    def execute(self, sql: str, params: tuple | dict = ()) -> int:
        """Run one write statement in its own transaction; return the rows changed."""
        return self.write(lambda conn: conn.execute(sql, params).rowcount)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. on SQLITE_FULL); a failed COMMIT leaves it open.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def aread(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return await asyncio.to_thread(self.read, sql, params)

    async def awrite(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.write, fn)

    def backup(self, dest: str | Path) -> Path:
        """Copy the live database to ``dest`` with SQLite's online backup; safe while others write."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / self.path.name
        tmp = dest.with_name(dest.name + ".partial")
        try:
            target = sqlite3.connect(tmp)
            try:
                self.connection().backup(target, pages=1024)
            finally:
                target.close()
        except sqlite3.Error as error:
            tmp.unlink(missing_ok=True)
            raise translate(error, dest) from error
        tmp.replace(dest)
        return dest

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for conn in list(self._connections):
                conn.close()
            self._connections.clear()
        self._local = threading.local()


_databases: dict[Path, Database] = {}
_databases_lock = threading.Lock()


def open_database(path: str | Path | Database) -> Database:
    """The process-wide ``Database`` for ``path`` (migrated once per process); a ``Database`` is returned as is."""
    if isinstance(path, Database):
        return path
    key = Path(path).resolve()
    with _databases_lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = Database(key)
        return db


__all__ = ["Database", "StorageError", "open_database"]
