"""Storage errors with messages that tell the user what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StorageError(RuntimeError):
    """Base class for every storage failure shown to the user."""


class NotADatabaseError(StorageError):
    """The database file is not SQLite, or is corrupt."""


class DatabaseTooNewError(StorageError):
    """The database was written by a newer DocMind."""


class ReadOnlyError(StorageError):
    """The data dir or database file cannot be written."""


class DiskFullError(StorageError):
    """The disk (or the database's page limit) is full."""


class DatabaseBusyError(StorageError):
    """Another connection kept the database locked past every retry."""


def translate(error: sqlite3.Error, path: Path) -> StorageError:
    """Turn a raw sqlite3 error into a StorageError with a clear message (raw ones never leave a store)."""
    name = getattr(error, "sqlite_errorname", "")
    text = str(error).lower()
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "disk image is malformed" in text:
        return NotADatabaseError(
            f"{path} is not a DocMind database or is corrupt. It was left untouched; "
            "move it aside (or restore a backup) and start DocMind again."
        )
    if name.startswith("SQLITE_READONLY") or "readonly database" in text or name == "SQLITE_CANTOPEN":
        return ReadOnlyError(
            f"Cannot write to {path}. Check that the folder exists and that you may write to it, "
            "or choose another data dir with --data-dir."
        )
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return DiskFullError(
            f"The disk holding {path} is full; nothing was written. Free some space and try again."
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return DatabaseBusyError(
            f"{path} stayed busy: another program kept it locked. Nothing was written; try again in a moment."
        )
    return StorageError(f"Database error in {path}: {error}")


class UnsupportedFilterError(StorageError, ValueError):
    """A metadata filter the SQLite stores cannot evaluate."""


class EmbeddingDimensionError(StorageError, ValueError):
    """Embeddings of different sizes were mixed in one database."""
