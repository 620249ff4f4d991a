"""SQLite storage: one file, one connection policy, LlamaIndex-compatible stores.

The LlamaIndex stores are imported on first use, so ``Database``-only paths (doctor, backup)
do not pay for importing llama-index.
"""

from docmind._lazy import lazy_getattr
from docmind.storage.db import Database, open_database
from docmind.storage.errors import (
    DatabaseBusyError,
    DatabaseTooNewError,
    DiskFullError,
    EmbeddingDimensionError,
    NotADatabaseError,
    ReadOnlyError,
    StorageError,
    UnsupportedFilterError,
)

_LAZY = {
    "SQLiteGraphStore": "docmind.storage.graph",
    "SQLiteKVStore": "docmind.storage.kv",
    "SQLitePropertyGraphStore": "docmind.storage.graph",
    "SQLiteVectorStore": "docmind.storage.vectors",
    "storage_context": "docmind.storage.context",
    "SQLiteChatStore": "docmind.storage.chat",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "Database",
    "DatabaseBusyError",
    "DatabaseTooNewError",
    "DiskFullError",
    "EmbeddingDimensionError",
    "NotADatabaseError",
    "ReadOnlyError",
    "SQLiteChatStore",
    "SQLiteGraphStore",
    "SQLiteKVStore",
    "SQLitePropertyGraphStore",
    "SQLiteVectorStore",
    "StorageError",
    "UnsupportedFilterError",
    "open_database",
    "storage_context",
]
