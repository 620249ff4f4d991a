"""Collections: named sets of documents, and the collections each chat searches (its scope).

A document can be in several collections. Deleting a collection never removes its documents;
removing a document removes it from every collection (a foreign-key cascade). A chat searches all
documents unless it is scoped to collections; every change of a chat's scope is recorded with it.
The CLI (``docmind collections``), the Documents tab and the Chat tab all use these functions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmind.cache.documents import DocumentNotFoundError, documents_under
from docmind.storage import Database, StorageError
from docmind.storage.sessions import now

ALL_DOCUMENTS = "All documents"
MAX_NAME_LENGTH = 80


class CollectionError(ValueError):
    """A collection name that cannot be used, or a collection that does not exist; the message says why."""


@dataclass(frozen=True)
class Collection:
    """A named set of documents, with its size."""

    id: int
    name: str
    documents: int
    chunks: int

    def to_json(self) -> dict[str, Any]:
        """The ``docmind collections list --json`` form."""
        return {"name": self.name, "documents": self.documents, "chunks": self.chunks}


@dataclass(frozen=True)
class Membership:
    """What ``add`` or ``remove`` did: the documents it changed, and the paths that matched no document."""

    collection: str
    changed: list[str]
    not_found: list[str]


@dataclass(frozen=True)
class Scope:
    """The collections a chat searches; none means all documents."""

    collection_ids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.collection_ids

    @property
    def label(self) -> str:
        """How the scope reads to the user: "All documents" or the collections' names."""
        return ALL_DOCUMENTS if self.everything else ", ".join(self.names)

    @property
    def search_filter(self) -> tuple[int, ...] | None:
        """What retrieval takes: the collection ids, or None for all documents."""
        return None if self.everything else self.collection_ids


@dataclass(frozen=True)
class ScopeChange:
    """One recorded change of a chat's scope."""

    names: tuple[str, ...]
    changed_at: str

    @property
    def label(self) -> str:
        return ", ".join(self.names) or ALL_DOCUMENTS


_LIST = """
    SELECT c.id, c.name, COUNT(d.source), COALESCE(SUM(d.chunks), 0)
    FROM collections c
    LEFT JOIN collection_documents m ON m.collection_id = c.id
    LEFT JOIN documents d ON d.source = m.source
"""


def list_collections(db: Database) -> list[Collection]:
    """Every collection, by name, with how many documents and passages it holds."""
    rows = db.read(_LIST + " GROUP BY c.id ORDER BY c.name COLLATE NOCASE")
    return [Collection(*row) for row in rows]


def get_collection(db: Database, name: str) -> Collection:
    rows = db.read(_LIST + " WHERE c.name = ? GROUP BY c.id", (name.strip(),))
    if not rows:
        raise CollectionError(f"There is no collection named {name.strip()!r}; `docmind collections list` shows them.")
    return Collection(*rows[0])


def create_collection(db: Database, name: str) -> Collection:
    """A new, empty collection; names are unique regardless of upper and lower case."""
    name = _valid_name(name)
    try:
        db.execute("INSERT INTO collections (name, created_at) VALUES (?, ?)", (name, now()))
    except StorageError as error:
        _raise_if_taken(error, name)
        raise
    return get_collection(db, name)


def rename_collection(db: Database, name: str, new_name: str) -> Collection:
    new_name = _valid_name(new_name)
    collection = get_collection(db, name)
    try:
        db.execute("UPDATE collections SET name = ? WHERE id = ?", (new_name, collection.id))
    except StorageError as error:
        _raise_if_taken(error, new_name)
        raise
    return get_collection(db, new_name)


def delete_collection(db: Database, name: str) -> Collection:
    """Delete a collection (its documents stay in the library); chats scoped to it lose it from their scope."""
    collection = get_collection(db, name)
    db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
    return collection


def add_to_collection(db: Database, name: str, paths: Iterable[str | Path]) -> Membership:
    """Add the documents at ``paths`` (files, or folders: every document under them) to a collection."""
    collection = get_collection(db, name)
    sources, not_found = _sources(db, paths)
    added = add_sources(db, collection.id, sources)
    return Membership(collection.name, added, not_found)


def add_sources(db: Database, collection_id: int, sources: Sequence[str]) -> list[str]:
    """Add library documents by source to a collection; return those that were not in it yet."""

    def add(conn: sqlite3.Connection) -> list[str]:
        added = []
        for source in sources:
            cursor = conn.execute(
                """INSERT OR IGNORE INTO collection_documents (collection_id, source)
                   SELECT ?, source FROM documents WHERE source = ?""",
                (collection_id, source),
            )
            if cursor.rowcount:
                added.append(source)
        return added

    return db.write(add)


def remove_from_collection(db: Database, name: str, paths: Iterable[str | Path]) -> Membership:
    """Take the documents at ``paths`` out of a collection; they stay in the library."""
    collection = get_collection(db, name)
    sources, not_found = _sources(db, paths)

    def remove(conn: sqlite3.Connection) -> list[str]:
        return [source for source in sources if conn.execute(
            "DELETE FROM collection_documents WHERE collection_id = ? AND source = ?", (collection.id, source)
        ).rowcount]

    return Membership(collection.name, db.write(remove), not_found)


def collection_documents(db: Database, name: str) -> list[str]:
    """The sources of a collection's documents, by path."""
    collection = get_collection(db, name)
    rows = db.read("SELECT source FROM collection_documents WHERE collection_id = ? ORDER BY source", (collection.id,))
    return [row[0] for row in rows]


def document_collections(db: Database) -> dict[str, list[str]]:
    """For each document in any collection, the names of its collections."""
    rows = db.read(
        """SELECT m.source, c.name FROM collection_documents m JOIN collections c ON c.id = m.collection_id
           ORDER BY c.name COLLATE NOCASE"""
    )
    found: dict[str, list[str]] = {}
    for source, name in rows:
        found.setdefault(source, []).append(name)
    return found


# ----- a chat's scope -----


def session_scope(db: Database, session_id: str | None) -> Scope:
    """The collections chat ``session_id`` searches (all documents for a new or unscoped chat)."""
    if not session_id:
        return Scope()
    rows = db.read(
        """SELECT c.id, c.name FROM session_collections s JOIN collections c ON c.id = s.collection_id
           WHERE s.session_id = ? ORDER BY c.name COLLATE NOCASE""",
        (session_id,),
    )
    return Scope(tuple(row[0] for row in rows), tuple(row[1] for row in rows))


def scope_sources(db: Database, scope: Scope) -> list[str]:
    """The sources of the documents in a scope's collections (every document for all documents)."""
    if scope.everything:
        return [row[0] for row in db.read("SELECT source FROM documents ORDER BY source")]
    marks = ",".join("?" * len(scope.collection_ids))
    rows = db.read(f"SELECT DISTINCT source FROM collection_documents WHERE collection_id IN ({marks}) ORDER BY source",
                   scope.collection_ids)
    return [row[0] for row in rows]


def scope_has_passages(db: Database, scope: Scope) -> bool:
    """True when a scope holds at least one passage to search."""
    if scope.everything:
        return bool(db.read("SELECT 1 FROM chunks LIMIT 1"))
    marks = ",".join("?" * len(scope.collection_ids))
    return bool(db.read(
        f"""SELECT 1 FROM collection_documents m JOIN documents d ON d.source = m.source
            WHERE m.collection_id IN ({marks}) AND d.chunks > 0 LIMIT 1""", scope.collection_ids))


def resolve_scope(db: Database, names: Iterable[str]) -> Scope:
    """The scope of the collections ``names`` (none: all documents); an unknown name is a ``CollectionError``."""
    found = {c.id: c.name for c in (get_collection(db, name) for name in names)}
    ordered = sorted(found.items(), key=lambda item: item[1].lower())
    return Scope(tuple(i for i, _ in ordered), tuple(n for _, n in ordered))


def set_session_scope(db: Database, session_id: str, scope: Scope) -> bool:
    """Make chat ``session_id`` search ``scope``, recording the change; False when it already did."""

    def change(conn: sqlite3.Connection) -> bool:
        current = {row[0] for row in conn.execute(
            "SELECT collection_id FROM session_collections WHERE session_id = ?", (session_id,))}
        if current == set(scope.collection_ids):
            return False
        conn.execute("DELETE FROM session_collections WHERE session_id = ?", (session_id,))
        conn.executemany("INSERT INTO session_collections VALUES (?, ?)",
                         [(session_id, collection_id) for collection_id in scope.collection_ids])
        conn.execute("INSERT INTO session_scope_changes (session_id, collections, changed_at) VALUES (?, ?, ?)",
                     (session_id, json.dumps(list(scope.names), ensure_ascii=False), now()))
        return True

    return db.write(change)


def scope_changes(db: Database, session_id: str) -> list[ScopeChange]:
    """Every recorded change of the chat's scope, oldest first."""
    rows = db.read(
        "SELECT collections, changed_at FROM session_scope_changes WHERE session_id = ? ORDER BY id", (session_id,)
    )
    return [ScopeChange(tuple(json.loads(row[0])), row[1]) for row in rows]


# ----- helpers -----


def _valid_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise CollectionError("A collection needs a name: type one first.")
    if len(name) > MAX_NAME_LENGTH:
        raise CollectionError(f"A collection name can be at most {MAX_NAME_LENGTH} characters; this one has {len(name)}.")
    if name == ALL_DOCUMENTS:
        raise CollectionError(f"{ALL_DOCUMENTS!r} is what a chat searches without a collection; choose another name.")
    return name


def _raise_if_taken(error: Exception, name: str) -> None:
    if "UNIQUE" in str(error):
        raise CollectionError(f"There is already a collection named {name!r}; choose another name.") from error


def _sources(db: Database, paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """The library documents at or under ``paths``, and the paths that matched none."""
    sources: dict[str, None] = {}
    not_found = []
    for path in paths:
        try:
            sources.update(dict.fromkeys(documents_under(db, path)))
        except DocumentNotFoundError:
            not_found.append(str(path))
    return list(sources), not_found
