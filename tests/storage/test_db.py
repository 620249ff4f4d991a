"""The connection policy, migrations and faults, on real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from docmind.storage import Database, DatabaseTooNewError, NotADatabaseError
from docmind.storage.migrations import MIGRATIONS, SCHEMA_VERSION


def test_connection_policy(db_path):
    db = Database(db_path)
    conn = db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_migrations_apply_once(db_path):
    Database(db_path).close()
    db = Database(db_path)
    rows = db.read("SELECT version, name FROM _migrations")
    assert [tuple(r) for r in rows] == [(n, step.__name__) for n, step in enumerate(MIGRATIONS, start=1)]
    assert db.read("PRAGMA user_version")[0][0] == SCHEMA_VERSION


def test_newer_database_is_refused_untouched(db_path):
    Database(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    before = db_path.read_bytes()
    with pytest.raises(DatabaseTooNewError, match="newer DocMind"):
        Database(db_path)
    assert db_path.read_bytes() == before


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_not_a_database_is_named_and_kept(db_path, content):
    db_path.write_bytes(content)
    with pytest.raises(NotADatabaseError, match=str(db_path)):
        Database(db_path)
    assert db_path.read_bytes() == content


def test_write_rolls_back_on_error(db_path):
    db = Database(db_path)
    with pytest.raises(ZeroDivisionError):
        db.write(lambda c: (c.execute("INSERT INTO counters VALUES ('x', 1)"), 1 / 0))
    assert db.read("SELECT COUNT(*) FROM counters WHERE name = 'x'")[0][0] == 0


def _open_files(db_path) -> int:
    """File descriptors of this process open on the database, its WAL or its shared-memory file."""
    names = {str(db_path), f"{db_path}-wal", f"{db_path}-shm"}
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") in names
        except OSError:
            pass  # closed meanwhile
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors through /proc")
def test_connections_of_ended_threads_are_closed(db_path):
    """Each ended thread's connection is closed. SQLite's unix VFS keeps the file descriptor of a closed
    connection while another one in the process holds a lock on the file, and reuses it for the next
    connection, so open descriptors stay bounded by the most threads that ran at once."""
    db = Database(db_path)
    db.execute("INSERT INTO counters VALUES ('probe', 0)")
    before = _open_files(db_path)

    def use() -> None:
        assert db.read("SELECT COUNT(*) FROM chunks")[0][0] == 0
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'probe'")

    for _ in range(50):  # one thread at a time
        thread = threading.Thread(target=use)
        thread.start()
        thread.join()
        assert db.open_connections == 1  # only this thread's
    assert _open_files(db_path) <= before + 1
    for _ in range(5):  # 20 at a time
        threads = [threading.Thread(target=use) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert db.open_connections == 1
        assert _open_files(db_path) <= before + 20
    assert db.read("SELECT value FROM counters WHERE name = 'probe'")[0][0] == 150
    db.close()
    assert db.open_connections == 0
    assert _open_files(db_path) == 0
