"""Documents as the viewer reaches them: by an opaque id, never by a path.

A document's id is derived from its path in the library (so it stays the same across restarts and
re-ingests) and is looked up among the documents the library holds now, so a removed document's id
leads nowhere. A cited passage is named by a short key of its text, found again among its page's chunks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from docmind.storage import Database

DOCUMENT_ID_CHARS = 32
PASSAGE_KEY_CHARS = 16
_DOCUMENT_ID = re.compile(rf"[0-9a-f]{{{DOCUMENT_ID_CHARS}}}")
_PASSAGE_KEY = re.compile(rf"[0-9a-f]{{{PASSAGE_KEY_CHARS}}}")
SHOWN_AS_FILES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".webp": "image/webp"}
"""Documents the browser shows from the file itself (PDF.js draws a PDF); TIFF and the rest are shown as text."""


@dataclass(frozen=True)
class LibraryDocument:
    """A document of the library, found by its id."""

    id: str
    source: Path

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def is_pdf(self) -> bool:
        return self.source.suffix.lower() == ".pdf"

    @property
    def media_type(self) -> str | None:
        """The type the file itself is served as, or None when it is shown only as its text."""
        return SHOWN_AS_FILES.get(self.source.suffix.lower())


def document_id(source: str | Path) -> str:
    """The viewer's id of the document at ``source`` (hex, no path characters)."""
    return hashlib.sha256(str(source).encode("utf-8", "surrogatepass")).hexdigest()[:DOCUMENT_ID_CHARS]


def passage_key(text: str) -> str:
    """A short key naming a passage by its text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:PASSAGE_KEY_CHARS]


def find_document(db: Database, doc_id: str) -> LibraryDocument | None:
    """The library's document with id ``doc_id``, or None (unknown, removed, or not an id at all)."""
    if not _DOCUMENT_ID.fullmatch(doc_id or ""):
        return None
    for (source,) in db.read("SELECT source FROM documents"):
        if document_id(source) == doc_id:
            return LibraryDocument(doc_id, Path(source))
    return None


def passage_text(db: Database, document: LibraryDocument, page: int | None, key: str) -> str | None:
    """The text of the chunk of ``document`` (on ``page``) whose key is ``key``, or None."""
    if not _PASSAGE_KEY.fullmatch(key or ""):
        return None
    if page is None:
        rows = db.read("SELECT text FROM chunks WHERE source = ?", (str(document.source),))
    else:
        rows = db.read("SELECT text FROM chunks WHERE source = ? AND page = ?", (str(document.source), page))
    return next((text for (text,) in rows if passage_key(text) == key), None)
