"""An upgrade never loses chats: an older database is copied aside, then migrated in place."""

from __future__ import annotations

import sqlite3

from docmind.agent.sessions import Sessions
from docmind.storage import Database
from docmind.storage.migrations import SCHEMA_VERSION, m001_initial


def _schema_1_database(path) -> None:
    """A database exactly as DocMind with schema 1 left it, holding one chat."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    m001_initial(conn)
    conn.execute("CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    conn.execute("INSERT INTO _migrations VALUES (1, 'm001_initial', datetime('now'))")
    conn.execute("INSERT INTO sessions VALUES ('old', 'Old chat', '2025-01-01T00:00:00', '2025-01-01T00:00:00')")
    conn.execute("INSERT INTO messages (session_id, role, content, created_at) VALUES ('old', 'user', 'hello?', 'x')")
    conn.execute("INSERT INTO messages (session_id, role, content, created_at) VALUES ('old', 'assistant', 'hi!', 'x')")
    conn.execute("PRAGMA user_version=1")
    conn.execute("COMMIT")
    conn.close()


def test_old_database_is_backed_up_then_migrated(data_dir, db_path):
    assert SCHEMA_VERSION > 1
    _schema_1_database(db_path)
    db = Database(db_path)
    assert db.read("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert [m.content for m in Sessions(db).messages("old")] == ["hello?", "hi!"]

    (backup,) = (data_dir / "backups").glob("docmind-v1-*.db")
    copy = sqlite3.connect(backup)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == 1
    assert copy.execute("SELECT content FROM messages ORDER BY id").fetchall() == [("hello?",), ("hi!",)]
    copy.close()

    Database(db_path)  # an up-to-date database is not copied again
    assert len(list((data_dir / "backups").glob("*.db"))) == 1


def test_new_database_makes_no_backup(data_dir, db_path):
    Database(db_path)
    assert not (data_dir / "backups").exists()
