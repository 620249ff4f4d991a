"""The documents in the library: list them, remove one (or a folder of them) with its chunks."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from docmind.storage import Database


class DocumentNotFoundError(LookupError):
    """``docs remove`` was given a path that is not in the library."""


@dataclass(frozen=True)
class DocumentInfo:
    """One ingested file, as ``docmind docs list --json`` prints it."""

    source: str
    sha256: str
    chunks: int
    ingested_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_documents(db: Database) -> list[DocumentInfo]:
    """Every document in the library, by path."""
    rows = db.read("SELECT source, sha256, chunks, ingested_at FROM documents ORDER BY source")
    return [DocumentInfo(row[0], row[1], row[2], row[3]) for row in rows]


def remove_document(db: Database, source: str | Path) -> int:
    """Remove one document and its chunks (FTS follows by trigger) in one transaction; return chunks removed."""
    source = str(source)

    def remove(conn: sqlite3.Connection) -> int:
        removed = conn.execute("DELETE FROM chunks WHERE source = ?", (source,)).rowcount
        conn.execute("DELETE FROM documents WHERE source = ?", (source,))
        return removed

    return db.write(remove)


def remove_documents(db: Database, path: str | Path) -> list[str]:
    """Remove the document at ``path``, or every document under the folder ``path``; return their sources.

    ``path`` need not exist any more. Raises ``DocumentNotFoundError`` when nothing matches.
    """
    target = os.path.abspath(Path(path).expanduser())
    candidates = {target, str(Path(target).resolve())}
    folder_prefixes = tuple(candidate.rstrip(os.sep) + os.sep for candidate in candidates)
    sources = [
        info.source
        for info in list_documents(db)
        if info.source in candidates or info.source.startswith(folder_prefixes)
    ]
    if not sources:
        raise DocumentNotFoundError(f"{target} is not in the library; `docmind docs list` shows what is.")
    for source in sources:
        remove_document(db, source)
    return sources
