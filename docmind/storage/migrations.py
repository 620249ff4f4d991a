"""Numbered schema migrations, applied in order once and recorded in ``_migrations``.

Add a migration by appending a function to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from docmind.storage.errors import DatabaseTooNewError

if TYPE_CHECKING:
    from docmind.storage.db import Database

log = logging.getLogger(__name__)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement script inside the caller's transaction (``executescript`` would commit)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


def m001_initial(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE kv (
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (collection, key)
        ) WITHOUT ROWID;

        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO counters VALUES ('chunks', 0);

        CREATE TABLE documents (
            source TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            chunks INTEGER NOT NULL DEFAULT 0,
            embed_model TEXT,
            ingested_at TEXT NOT NULL
        );

        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            node_id TEXT NOT NULL UNIQUE,
            ref_doc_id TEXT,
            source TEXT,
            page INTEGER,
            text TEXT NOT NULL,
            metadata TEXT NOT NULL,
            node TEXT NOT NULL,
            embedding BLOB
        );
        CREATE INDEX chunks_ref_doc ON chunks(ref_doc_id);
        CREATE INDEX chunks_source ON chunks(source);

        CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id');
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;
        CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;

        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            thinking TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '{}',
            tokens INTEGER,
            status TEXT NOT NULL DEFAULT 'complete',
            created_at TEXT NOT NULL
        );
        CREATE INDEX messages_session ON messages(session_id, id);
        CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;

        CREATE TABLE graph_nodes (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            name TEXT,
            text TEXT,
            properties TEXT NOT NULL DEFAULT '{}',
            embedding BLOB
        );
        CREATE INDEX graph_nodes_label ON graph_nodes(label);
        CREATE TABLE graph_relations (
            source_id TEXT NOT NULL REFERENCES graph_nodes(id) ON DELETE CASCADE,
            label TEXT NOT NULL,
            target_id TEXT NOT NULL REFERENCES graph_nodes(id) ON DELETE CASCADE,
            properties TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (source_id, label, target_id)
        );
        CREATE INDEX graph_relations_target ON graph_relations(target_id);
        """
    )


def m002_chunks_fts_porter(conn: sqlite3.Connection) -> None:
    """Stem chunk words (porter) and fold diacritics, so BM25 matches "descale" to "descaling"."""
    _run_script(
        conn,
        """
        DROP TABLE chunks_fts;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
        );
        INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
        """,
    )


def m003_kv_rowid_table(conn: sqlite3.Connection) -> None:
    """Make ``kv`` an ordinary rowid table: its values (docstore nodes, ingestion cache entries) are
    large, which WITHOUT ROWID handles badly (about 1.7x slower bulk inserts measured here)."""
    _run_script(
        conn,
        """
        CREATE TABLE kv_new (
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (collection, key)
        );
        INSERT INTO kv_new SELECT collection, key, value FROM kv;
        DROP TABLE kv;
        ALTER TABLE kv_new RENAME TO kv;
        """,
    )


def m004_collections_and_watched_folders(conn: sqlite3.Connection) -> None:
    """Collections (named sets of documents), the collections a chat searches (and when that changed),
    and the folders the app keeps in sync with the library."""
    _run_script(
        conn,
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            created_at TEXT NOT NULL
        );
        CREATE TABLE collection_documents (
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            source TEXT NOT NULL REFERENCES documents(source) ON DELETE CASCADE,
            PRIMARY KEY (collection_id, source)
        ) WITHOUT ROWID;
        CREATE INDEX collection_documents_source ON collection_documents(source);

        CREATE TABLE session_collections (
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            PRIMARY KEY (session_id, collection_id)
        ) WITHOUT ROWID;
        CREATE TABLE session_scope_changes (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            collections TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
        CREATE INDEX session_scope_changes_session ON session_scope_changes(session_id, id);

        CREATE TABLE watched_folders (
            path TEXT PRIMARY KEY,
            collection_id INTEGER REFERENCES collections(id) ON DELETE SET NULL,
            added_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'waiting for DocMind to start',
            waiting INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            state_at TEXT
        );
        """,
    )


def m005_users_and_session_owners(conn: sqlite3.Connection) -> None:
    """User accounts for serving a team (argon2 password hashes), and each session's owner (NULL: made
    without a login, by the desktop app or the CLI)."""
    _run_script(
        conn,
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        ALTER TABLE sessions ADD COLUMN owner TEXT;
        CREATE INDEX sessions_owner ON sessions(owner);
        """,
    )


def m006_chunks_fts_context(conn: sqlite3.Connection) -> None:
    """Index each chunk's section context (title › headings) in its own FTS5 column, so BM25 can weigh a
    match in the headings apart from one in the body (``bm25(chunks_fts, body, context)``).

    ``chunks.context`` is a virtual column over the metadata the chunk already stores, so nothing is
    written twice and existing chunks get their context without re-ingesting.
    """
    _run_script(
        conn,
        """
        ALTER TABLE chunks ADD COLUMN context TEXT GENERATED ALWAYS AS (json_extract(metadata, '$.context')) VIRTUAL;
        DROP TRIGGER chunks_ai;
        DROP TRIGGER chunks_ad;
        DROP TRIGGER chunks_au;
        DROP TABLE chunks_fts;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, context, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
        );
        INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
        CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text, context) VALUES (new.id, new.text, new.context);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;
        CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, context) VALUES ('delete', old.id, old.text, old.context);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;
        CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text, context) VALUES ('delete', old.id, old.text, old.context);
            INSERT INTO chunks_fts(rowid, text, context) VALUES (new.id, new.text, new.context);
            UPDATE counters SET value = value + 1 WHERE name = 'chunks';
        END;
        """,
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial, m002_chunks_fts_porter, m003_kv_rowid_table, m004_collections_and_watched_folders,
    m005_users_and_session_owners, m006_chunks_fts_context,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _applied(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM _migrations").fetchone()[0]


def backup_before_upgrade(db: Database, current: int) -> Path:
    """Copy a database from an older DocMind aside before migrating it, so no upgrade can lose chats."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    folder = db.path.parent / "backups"
    folder.mkdir(exist_ok=True)
    dest = db.backup(folder / f"docmind-v{current}-{stamp}.db")
    log.info("upgrading %s from schema %d to %d; a copy of the old database is in %s",
                db.path, current, SCHEMA_VERSION, dest)
    return dest


def migrate(db: Database) -> int:
    """Bring ``db`` up to ``SCHEMA_VERSION``; refuse a database from a newer DocMind. Returns the version."""
    current = db.read("PRAGMA user_version")[0][0]
    if current > SCHEMA_VERSION:
        raise DatabaseTooNewError(
            f"{db.path} was written by a newer DocMind (schema {current}, this version knows {SCHEMA_VERSION}). "
            "It was left untouched: update DocMind to open it."
        )
    if current == SCHEMA_VERSION:
        return current
    if current > 0:
        backup_before_upgrade(db, current)

    def apply(conn: sqlite3.Connection) -> int:
        done = _applied(conn)
        for version, step in enumerate(MIGRATIONS, start=1):
            if version <= done:
                continue
            log.info("applying migration %d %s to %s", version, step.__name__, db.path)
            step(conn)
            conn.execute(
                "INSERT INTO _migrations VALUES (?, ?, datetime('now'))", (version, step.__name__)
            )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return SCHEMA_VERSION

    return db.write(apply)
