"""A LlamaIndex ``StorageContext`` whose every store lives in the one DocMind database."""

from __future__ import annotations

from pathlib import Path

from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.index_store.keyval_index_store import KVIndexStore
from llama_index.core.storage.storage_context import StorageContext
from llama_index.core.vector_stores.simple import DEFAULT_VECTOR_STORE

from docmind.storage.db import Database, open_database
from docmind.storage.graph import SQLiteGraphStore, SQLitePropertyGraphStore
from docmind.storage.kv import SQLiteKVStore
from docmind.storage.vectors import SQLiteVectorStore


def storage_context(db: str | Path | Database) -> StorageContext:
    """Docstore, index store, vector store and graph stores, all persisted in ``db`` as they change.

    ``StorageContext.persist()`` is not needed; reload with
    ``load_index_from_storage(storage_context(db), embed_model=...)``.
    """
    database = open_database(db)
    kv = SQLiteKVStore(database)
    return StorageContext(
        docstore=KVDocumentStore(kv),
        index_store=KVIndexStore(kv),
        vector_stores={DEFAULT_VECTOR_STORE: SQLiteVectorStore(database)},
        graph_store=SQLiteGraphStore(database),
        property_graph_store=SQLitePropertyGraphStore(database),
    )
