"""The documents in the library: list them, count them, remove one (or a folder of them) with its chunks.

The CLI (``docmind docs``) and the Documents tab both use these, so both remove and count alike.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from docmind.cache.library import discard_upload
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


@dataclass(frozen=True)
class LibraryStats:
    """The size of the library, and a number that changes whenever any chunk is added or removed."""

    documents: int
    chunks: int
    version: int


def list_documents(db: Database) -> list[DocumentInfo]:
    """Every document in the library, by path."""
    rows = db.read("SELECT source, sha256, chunks, ingested_at FROM documents ORDER BY source")
    return [DocumentInfo(row[0], row[1], row[2], row[3]) for row in rows]


def library_stats(db: Database) -> LibraryStats:
    """How many documents and chunks the library holds, read in one snapshot."""
    documents, chunks, version = db.read(
        """SELECT COUNT(*), COALESCE(SUM(chunks), 0), (SELECT value FROM counters WHERE name = 'chunks')
           FROM documents"""
    )[0]
    return LibraryStats(documents, chunks, version)


def document_chunks(db: Database, source: str | Path) -> int:
    """How many chunks the document ``source`` has (0 when it is not in the library)."""
    rows = db.read("SELECT chunks FROM documents WHERE source = ?", (str(source),))
    return rows[0][0] if rows else 0


def remove_document(db: Database, source: str | Path, library: Path | None = None) -> int:
    """Remove one document with its chunks, their vectors and FTS rows (by trigger); return chunks removed.

    The rows go in one transaction. When ``source`` is a copy DocMind keeps in the upload folder
    ``library``, that copy is deleted too; the user's own files are never touched.
    """
    source = str(source)

    def remove(conn: sqlite3.Connection) -> int:
        removed = conn.execute("DELETE FROM chunks WHERE source = ?", (source,)).rowcount
        conn.execute("DELETE FROM documents WHERE source = ?", (source,))
        return removed

    removed = db.write(remove)
    if library is not None:
        discard_upload(source, library)
    return removed


def documents_under(db: Database, path: str | Path) -> list[str]:
    """The sources of the document at ``path`` or of every document under the folder ``path`` (which
    need not exist any more). Raises ``DocumentNotFoundError`` when nothing matches."""
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
    return sources


def remove_documents(db: Database, path: str | Path, library: Path | None = None) -> list[str]:
    """Remove the document at ``path``, or every document under the folder ``path``; return their sources.

    ``path`` need not exist any more. Stored upload copies in ``library`` go with their documents.
    Raises ``DocumentNotFoundError`` when nothing matches.
    """
    sources = documents_under(db, path)
    for source in sources:
        remove_document(db, source, library)
    return sources
