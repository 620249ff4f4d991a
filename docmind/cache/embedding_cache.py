"""Keep the per-chunk embedding cache bounded.

Cached embeddings are keyed by the hash of the text embedded (a chunk's context and text), so an edited file re-embeds only what
changed and an edit undone costs nothing. Texts that left the library (removed files, old versions)
would pile up for ever, so once the cache holds more than twice the library plus ``SPARE_ENTRIES``,
the oldest of those leftovers are forgotten. Standard library only: this runs after ingests.
"""

from __future__ import annotations

import hashlib
import logging

from docmind.storage.db import Database

log = logging.getLogger(__name__)

SPARE_ENTRIES = 2000
"""Leftover embeddings always kept, so small libraries never prune."""


def embed_text(text: str, context: str | None = None) -> str:
    """What the embedding model reads for a chunk: its context line (title › headings), a blank line, its text."""
    return f"{context}\n\n{text}" if context else text


def text_key(text: str) -> str:
    """The cache key of a chunk's embedding: the SHA-256 of the text that was embedded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_collection(identity: str) -> str:
    """The kv collection holding one embedding model's cache."""
    return f"embeddings/{identity}"


def prune_embedding_cache(db: Database, identity: str, spare: int = SPARE_ENTRIES) -> int:
    """Forget the oldest cached embeddings of texts no longer in the library; return how many.

    Keeps every live chunk's embedding plus up to ``max(spare, live chunks)`` leftovers, newest first.
    Other embedding models' caches are dropped whole: their vectors can never be used again.
    """
    collection = cache_collection(identity)
    live_count = db.read("SELECT count(*) FROM chunks")[0][0]
    allowed = max(spare, live_count)
    cached = db.read("SELECT count(*) FROM kv WHERE collection = ?", (collection,))[0][0]
    others = db.read("SELECT count(*) FROM kv WHERE collection LIKE 'embeddings/%' AND collection != ?",
                     (collection,))[0][0]
    if cached <= live_count + allowed and not others:
        return 0
    rows = db.read("SELECT text, json_extract(metadata, '$.context') FROM chunks")
    live = {text_key(embed_text(row[0], row[1])) for row in rows}
    rows = db.read("SELECT rowid, key FROM kv WHERE collection = ? ORDER BY rowid DESC", (collection,))
    leftovers = [rowid for rowid, key in rows if key not in live]
    doomed = [(rowid,) for rowid in leftovers[allowed:]]

    def delete(conn) -> int:
        conn.executemany("DELETE FROM kv WHERE rowid = ?", doomed)
        dropped = conn.execute("DELETE FROM kv WHERE collection LIKE 'embeddings/%' AND collection != ?",
                               (collection,)).rowcount
        return len(doomed) + dropped

    removed = db.write(delete)
    log.info("embedding cache: forgot %d entries no longer in the library", removed)
    return removed
