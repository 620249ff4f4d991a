"""The section context in the keyword index: a library made by schema 3 upgrades in place, and BM25
weighs a match in the context apart from one in the text."""

from __future__ import annotations

import sqlite3

from llama_index.core.schema import TextNode

from docmind.storage import Database, SQLiteVectorStore
from docmind.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from docmind.storage.vectors import upsert_chunks


def _chunk(node_id: str, text: str, context: str) -> TextNode:
    return TextNode(id_=node_id, text=text, embedding=[1.0, 0.0],
                    metadata={"source": f"/docs/{node_id}.html", "page": None, "context": context})


def _schema_3_library(path) -> None:
    """A database exactly as DocMind with schema 3 left it, holding two chunks (context only in metadata)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for version, step in enumerate(MIGRATIONS[:3], start=1):
        step(conn)
        conn.execute("INSERT INTO _migrations VALUES (?, ?, datetime('now'))", (version, step.__name__))
    upsert_chunks(conn, [
        _chunk("vacuum", "The command rebuilds the database file, repacking it into a minimal amount of space.",
               "SQLite › VACUUM"),
        _chunk("wal", "Readers do not block writers and a writer does not block readers.",
               "SQLite › Write-Ahead Logging"),
    ])
    conn.execute("PRAGMA user_version=3")
    conn.execute("COMMIT")
    conn.close()


def _ids(store: SQLiteVectorStore, query: str, context_weight: float = 1.0) -> list[str]:
    return store.text_search(query, 5, context_weight=context_weight).ids or []


def test_a_schema_3_library_upgrades_and_finds_chunks_by_their_context(db_path):
    _schema_3_library(db_path)
    db = Database(db_path)
    assert db.read("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    store = SQLiteVectorStore(db)
    assert _ids(store, "vacuum") == ["vacuum"]  # the word is only in the chunk's context
    assert _ids(store, "write-ahead logging") == ["wal"]
    assert _ids(store, "readers block writers") == ["wal"]  # the text is still indexed
    db.write(lambda conn: conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"))


def test_new_and_deleted_chunks_keep_the_index_consistent(db_path):
    db = Database(db_path)
    db.write(lambda conn: upsert_chunks(conn, [_chunk("a", "alpha text", "Guide › Beta"),
                                               _chunk("b", "beta text", "Guide › Alpha")]))
    store = SQLiteVectorStore(db)
    assert set(_ids(store, "beta")) == {"a", "b"}
    db.write(lambda conn: upsert_chunks(conn, [_chunk("a", "alpha text", "Guide › Gamma")]))  # replaced
    db.write(lambda conn: conn.execute("DELETE FROM chunks WHERE node_id = 'b'"))
    assert _ids(store, "beta") == []
    assert _ids(store, "gamma") == ["a"]
    db.write(lambda conn: conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')"))


def test_the_context_weight_orders_text_and_context_matches(db_path):
    db = Database(db_path)
    db.write(lambda conn: upsert_chunks(conn, [_chunk("in_text", "how to attach a database file", "Guide › Other"),
                                               _chunk("in_context", "how to open another file", "Guide › Attach")]))
    store = SQLiteVectorStore(db)
    assert _ids(store, "attach", context_weight=0.1) == ["in_text", "in_context"]
    assert _ids(store, "attach", context_weight=10.0) == ["in_context", "in_text"]
