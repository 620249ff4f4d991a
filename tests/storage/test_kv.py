"""SQLiteKVStore on its own and inside LlamaIndex's docstore, index store and ingestion cache."""

from __future__ import annotations

from llama_index.core.data_structs import IndexDict
from llama_index.core.ingestion import IngestionCache
from llama_index.core.schema import Document, TextNode
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.index_store.keyval_index_store import KVIndexStore
from llama_index.core.storage.kvstore.types import BaseKVStore

from docmind.storage import Database, SQLiteKVStore


def test_put_get_delete_by_collection(db_path):
    kv = SQLiteKVStore(db_path)
    assert isinstance(kv, BaseKVStore)
    kv.put("a", {"x": 1})
    kv.put("a", {"x": 2}, collection="other")
    assert kv.get("a") == {"x": 1}
    assert kv.get("a", collection="other") == {"x": 2}
    assert kv.get("missing") is None
    kv.put("a", {"x": 3})
    assert kv.get_all() == {"a": {"x": 3}}
    assert kv.delete("a") is True
    assert kv.delete("a") is False
    assert kv.get_all() == {}
    assert kv.get_all("other") == {"a": {"x": 2}}


def test_put_all_is_one_transaction_and_survives_reopen(db_path):
    kv = SQLiteKVStore(Database(db_path))
    pairs = [(f"k{i}", {"i": i, "text": "é" * i}) for i in range(500)]
    kv.put_all(pairs, collection="c", batch_size=64)
    kv.database.close()
    reopened = SQLiteKVStore(Database(db_path))
    assert reopened.get_all("c") == dict(pairs)


async def test_async_methods(db_path):
    kv = SQLiteKVStore(db_path)
    await kv.aput("a", {"v": [1, 2]})
    await kv.aput_all([("b", {"v": 3}), ("c", {"v": 4})], batch_size=10)
    assert await kv.aget("a") == {"v": [1, 2]}
    assert await kv.aget_all() == {"a": {"v": [1, 2]}, "b": {"v": 3}, "c": {"v": 4}}
    assert await kv.adelete("b") is True
    assert await kv.adelete("b") is False
    assert await kv.aget("b") is None


def test_docstore_and_index_store_on_sqlite(db_path):
    docstore = KVDocumentStore(SQLiteKVStore(db_path))
    nodes = [TextNode(text=f"chunk {i}", id_=f"n{i}") for i in range(3)]
    docstore.add_documents(nodes)
    docstore.set_document_hash("n0", "hash0")
    index_store = KVIndexStore(SQLiteKVStore(db_path))
    struct = IndexDict(index_id="idx")
    struct.add_node(nodes[0])
    index_store.add_index_struct(struct)

    fresh_docstore = KVDocumentStore(SQLiteKVStore(Database(db_path)))
    assert fresh_docstore.get_node("n2").text == "chunk 2"
    assert fresh_docstore.get_document_hash("n0") == "hash0"
    assert set(fresh_docstore.docs) == {"n0", "n1", "n2"}
    fresh_docstore.delete_document("n1")
    assert not docstore.document_exists("n1")
    loaded = KVIndexStore(SQLiteKVStore(Database(db_path))).get_index_struct("idx")
    assert loaded.nodes_dict == struct.nodes_dict


def test_ingestion_cache_on_sqlite(db_path):
    cache = IngestionCache(cache=SQLiteKVStore(db_path))
    cache.put("hash", [Document(text="hello", id_="d1")])
    fresh = IngestionCache(cache=SQLiteKVStore(Database(db_path)))
    [node] = fresh.get("hash")
    assert (node.id_, node.text) == ("d1", "hello")
    fresh.clear()
    assert cache.get("hash") is None


def test_values_round_trip_like_json(db_path):
    kv = SQLiteKVStore(db_path)
    value = {"text": "naïve — 東京 \u2028", "float": 0.1, "big": 2**60, "nested": {"list": [1, None, True]}, "empty": {}}
    kv.put("v", value)
    assert kv.get("v") == value
    kv.put("int-keys", {1: "a", 2: "b"})
    assert kv.get("int-keys") == {"1": "a", "2": "b"}  # as json.dumps would store them


def test_m003_keeps_kv_rows_of_an_older_database(db_path):
    import sqlite3

    from docmind.storage.migrations import MIGRATIONS

    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for version, step in enumerate(MIGRATIONS[:2], start=1):
        step(raw)
        raw.execute("INSERT INTO _migrations VALUES (?, ?, datetime('now'))", (version, step.__name__))
    raw.execute("PRAGMA user_version=2")
    raw.executemany("INSERT INTO kv VALUES (?, ?, ?)", [("c", f"k{i}", f'{{"i": {i}}}') for i in range(20)])
    raw.close()
    kv = SQLiteKVStore(Database(db_path))
    assert kv.get_all("c") == {f"k{i}": {"i": i} for i in range(20)}
    table = kv.database.read("SELECT sql FROM sqlite_master WHERE name = 'kv'")[0][0]
    assert "WITHOUT ROWID" not in table
