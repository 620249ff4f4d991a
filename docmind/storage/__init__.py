"""SQLite storage: one file, one connection policy, LlamaIndex-compatible stores."""

from docmind.storage.db import Database, open_database
from docmind.storage.errors import (
    DatabaseTooNewError,
    DiskFullError,
    NotADatabaseError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "Database",
    "DatabaseTooNewError",
    "DiskFullError",
    "NotADatabaseError",
    "ReadOnlyError",
    "StorageError",
    "open_database",
]
