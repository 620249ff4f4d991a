"""The connection policy, migrations and faults, on real SQLite files."""

from __future__ import annotations

import sqlite3

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
