"""Move everything to another data dir: one export file, and an import that restores or merges it.

The export is a zip holding an online-backup copy of the database (consistent while the app runs),
the copies of uploaded documents DocMind keeps in its library folder, and ``manifest.json`` with the
format version, the counts and a SHA-256 of every other member. An import checks all of that before
it changes anything, then adds everything in one transaction: into an empty data dir that restores
the export exactly; into a used one it merges (a session whose id is taken gets a new id, a document
already present with the same content is skipped). A damaged or truncated file changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from docmind import __version__
from docmind.cache.library import library_dir, owns
from docmind.storage import Database, StorageError
from docmind.storage.migrations import SCHEMA_VERSION
from docmind.storage.sessions import STATUS_INTERRUPTED, STATUS_STREAMING, new_session_id

log = logging.getLogger(__name__)

EXPORT_FORMAT = "docmind-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "docmind.db"
LIBRARY = "library"
_BLOCK = 1 << 20


class TransferError(ValueError):
    """An export that cannot be written, or a file that cannot be imported; nothing was changed."""


@dataclass(frozen=True)
class ExportReport:
    """What ``export_everything`` wrote; ``to_json()`` is the ``docmind export --json`` document."""

    file: str
    documents: int
    chunks: int
    sessions: int
    messages: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportReport:
    """What ``import_everything`` added; ``to_json()`` is the ``docmind import --json`` document."""

    documents_added: int
    documents_skipped: int
    sessions_added: int
    sessions_renamed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----- export -----


def export_everything(db: Database, data_dir: Path, dest: str | Path) -> ExportReport:
    """Write the library, collections, watched folders and every chat of ``db`` to the zip ``dest``."""
    dest = Path(dest).expanduser().resolve()
    if dest.is_dir():
        raise TransferError(f"{dest} is a folder; give the name of the file to write, like docmind-export.zip.")
    library = library_dir(data_dir)
    partial = dest.with_name(dest.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="docmind-export-", dir=dest.parent) as tmp:
        snapshot = db.backup(Path(tmp) / DATABASE)
        counts, stored = _snapshot_contents(snapshot, library)
        members = {DATABASE: snapshot}
        for source in stored:
            path = Path(source)
            if path.is_file():  # removed since the snapshot: its passages are still exported
                members[str(PurePosixPath(LIBRARY, *path.resolve().relative_to(library.resolve()).parts))] = path
        try:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                checksums = {}
                for name, path in members.items():
                    archive.write(path, name)
                    checksums[name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
                manifest = {
                    "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "schema": SCHEMA_VERSION,
                    "docmind": __version__, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "library": str(library.resolve()), "counts": counts, "files": checksums,
                }
                archive.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
    log.info("exported %s to %s", counts, dest)
    return ExportReport(str(dest), counts["documents"], counts["chunks"], counts["sessions"], counts["messages"],
                        dest.stat().st_size)


def _snapshot_contents(snapshot: Path, library: Path) -> tuple[dict[str, int], list[str]]:
    """The counts of a database copy, and the sources of its documents that are copies in ``library``."""
    with contextlib.closing(sqlite3.connect(snapshot)) as conn:
        counts = _counts(conn)
        sources = [row[0] for row in conn.execute("SELECT source FROM documents ORDER BY source")]
    return counts, [source for source in sources if owns(source, library)]


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = {"documents": "documents", "chunks": "chunks", "sessions": "sessions", "messages": "messages",
              "collections": "collections", "watched_folders": "watched_folders"}
    return {key: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for key, table in tables.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# ----- import -----


@dataclass
class _Export:
    """A verified export, unpacked in a temporary folder."""

    manifest: dict[str, Any]
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / DATABASE

    def stored_copy(self, source: str) -> Path | None:
        """The unpacked copy of a document kept in the exporting library, if it was exported."""
        relative = self._library_relative(source)
        if relative is None:
            return None
        path = self.folder / LIBRARY / relative
        return path if path.is_file() else None

    def _library_relative(self, source: str) -> Path | None:
        try:
            return Path(source).relative_to(self.manifest["library"])
        except ValueError:
            return None

    def target_source(self, source: str, library: Path) -> str:
        """Where a document lives after the import: an exported library copy moves into ``library``."""
        relative = self._library_relative(source)
        return source if relative is None else str(library.resolve() / relative)


def import_everything(db: Database, data_dir: Path, file: str | Path) -> ImportReport:
    """Add everything in the export ``file`` to ``db`` and the library folder of ``data_dir``.

    Raises ``TransferError`` (and changes nothing) when the file is not a complete DocMind export.
    """
    with tempfile.TemporaryDirectory(prefix="docmind-import-") as tmp:
        export = _unpack_verified(Path(file).expanduser(), Path(tmp))
        library = library_dir(data_dir)
        written: list[Path] = []
        try:
            with contextlib.closing(sqlite3.connect(export.database)) as source:
                source.row_factory = sqlite3.Row
                report = db.write(lambda conn: _merge(conn, source, export, library, written))
        except BaseException:
            for path in written:  # copies made for documents that were not added after all
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    path.parent.rmdir()
            raise
    log.info("imported %s: %s", file, report)
    return report


def _unpack_verified(file: Path, folder: Path) -> _Export:
    """Check the zip, its manifest and every member's checksum, and unpack it; or raise ``TransferError``."""
    damaged = f"{file} is damaged or incomplete (it may have been cut short while copying); nothing was imported."
    if not file.is_file():
        raise TransferError(f"{file} does not exist or is not a file.")
    try:
        with zipfile.ZipFile(file) as archive:
            try:
                manifest = json.loads(archive.read(MANIFEST))
            except KeyError as error:
                raise TransferError(f"{file} is not a DocMind export (it has no manifest).") from error
            _check_manifest(manifest, file)
            for name, expected in manifest["files"].items():
                _unpack_member(archive, name, expected, folder, damaged)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as error:
        if isinstance(error, TransferError):
            raise
        raise TransferError(damaged) from error
    export = _Export(manifest, folder)
    _check_database(export, damaged)
    return export


def _check_manifest(manifest: Any, file: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise TransferError(f"{file} is not a DocMind export; make one with `docmind export FILE`.")
    if manifest.get("version", 0) > EXPORT_VERSION or manifest.get("schema", 0) > SCHEMA_VERSION:
        raise TransferError(f"{file} was made by a newer DocMind ({manifest.get('docmind')}); update DocMind to import it.")
    files = manifest.get("files")
    if not isinstance(files, dict) or DATABASE not in files or not isinstance(manifest.get("library"), str):
        raise TransferError(f"{file} has an incomplete manifest; nothing was imported.")


def _unpack_member(archive: zipfile.ZipFile, name: str, expected: dict[str, Any], folder: Path, damaged: str) -> None:
    """Unpack one listed member, checking its name stays inside ``folder`` and its size and SHA-256."""
    parts = PurePosixPath(name).parts
    safe = name == DATABASE or (len(parts) >= 2 and parts[0] == LIBRARY and all(p not in ("", ".", "..") for p in parts))
    if not safe or PurePosixPath(name).is_absolute():
        raise TransferError(f"The export lists an unexpected file {name!r}; nothing was imported.")
    target = folder.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with archive.open(name) as reader, open(target, "wb") as writer:
        while block := reader.read(_BLOCK):
            digest.update(block)
            writer.write(block)
    if digest.hexdigest() != expected.get("sha256") or target.stat().st_size != expected.get("bytes"):
        raise TransferError(damaged)


def _check_database(export: _Export, damaged: str) -> None:
    """The unpacked database passes SQLite's integrity check, is brought up to this schema, and holds the
    manifest's counts."""
    try:
        with contextlib.closing(sqlite3.connect(export.database)) as conn:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise TransferError(damaged)
        copy = Database(export.database)  # migrates an export from an older DocMind, in the temporary copy
        copy.close()
        with contextlib.closing(sqlite3.connect(export.database)) as conn:
            counts = _counts(conn)
    except (sqlite3.Error, StorageError) as error:
        raise TransferError(damaged) from error
    if counts != export.manifest.get("counts"):
        raise TransferError(damaged)


def _merge(conn: sqlite3.Connection, source: sqlite3.Connection, export: _Export, library: Path,
           written: list[Path]) -> ImportReport:
    """Copy every row of ``source`` into the target, inside the caller's transaction."""
    documents = _merge_documents(conn, source, export, library, written)
    collections = _merge_collections(conn, source, documents.sources)
    sessions_added, renamed = _merge_sessions(conn, source, collections)
    _merge_cache(conn, source)
    return ImportReport(documents.added, documents.skipped, sessions_added, renamed)


@dataclass
class _Documents:
    added: int
    skipped: int
    sources: dict[str, str]  # exported source -> the target's source of the same document


def _merge_documents(conn: sqlite3.Connection, source: sqlite3.Connection, export: _Export, library: Path,
                     written: list[Path]) -> _Documents:
    by_hash = dict(conn.execute("SELECT sha256, source FROM documents"))  # what the target held before
    result = _Documents(0, 0, {})
    for doc in source.execute("SELECT * FROM documents ORDER BY source"):
        target = export.target_source(doc["source"], library)
        existing = by_hash.get(doc["sha256"]) or _known_source(conn, target)
        chunks = source.execute("SELECT * FROM chunks WHERE source = ? ORDER BY id", (doc["source"],)).fetchall()
        if existing is None and _node_ids_taken(conn, chunks):
            existing = target
        if existing is not None:
            result.sources[doc["source"]] = existing
            result.skipped += 1
            continue
        copy = export.stored_copy(doc["source"])
        if copy is not None:
            _place(copy, Path(target), written)
        conn.execute("INSERT INTO documents (source, sha256, size, mtime, chunks, embed_model, ingested_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (target, doc["sha256"], doc["size"], doc["mtime"], doc["chunks"], doc["embed_model"],
                      doc["ingested_at"]))
        conn.executemany(
            "INSERT INTO chunks (node_id, ref_doc_id, source, page, text, metadata, node, embedding)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(c["node_id"], c["ref_doc_id"], target, c["page"], c["text"],
              _moved_metadata(c["metadata"], doc["source"], target), c["node"], c["embedding"]) for c in chunks])
        result.sources[doc["source"]] = target
        result.added += 1
    return result


def _known_source(conn: sqlite3.Connection, source: str) -> str | None:
    return source if conn.execute("SELECT 1 FROM documents WHERE source = ?", (source,)).fetchone() else None


def _node_ids_taken(conn: sqlite3.Connection, chunks: list[sqlite3.Row]) -> bool:
    """True when a chunk id of the document is already used by another document (same path, other content)."""
    return any(conn.execute("SELECT 1 FROM chunks WHERE node_id = ?", (c["node_id"],)).fetchone() for c in chunks)


def _moved_metadata(metadata: str, old: str, new: str) -> str:
    if old == new:
        return metadata
    data = json.loads(metadata)
    for key, value in data.items():
        if value == old:
            data[key] = new
    return json.dumps(data, ensure_ascii=False)


def _place(copy: Path, target: Path, written: list[Path]) -> None:
    """Put an exported library copy at ``target`` (complete or not at all); keep one already there."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".import-{target.name}.part")
    shutil.copyfile(copy, partial)
    os.replace(partial, target)
    written.append(target)


def _merge_collections(conn: sqlite3.Connection, source: sqlite3.Connection, sources: dict[str, str]) -> dict[int, int]:
    """Collections by name (an existing one of that name gains the members), their members, watched folders."""
    ids: dict[int, int] = {}
    for row in source.execute("SELECT id, name, created_at FROM collections"):
        found = conn.execute("SELECT id FROM collections WHERE name = ?", (row["name"],)).fetchone()
        ids[row["id"]] = found[0] if found else conn.execute(
            "INSERT INTO collections (name, created_at) VALUES (?, ?)", (row["name"], row["created_at"])).lastrowid
    conn.executemany(
        "INSERT OR IGNORE INTO collection_documents (collection_id, source) VALUES (?, ?)",
        [(ids[row[0]], sources[row[1]]) for row in source.execute("SELECT collection_id, source FROM collection_documents")
         if row[1] in sources])
    conn.executemany(
        "INSERT OR IGNORE INTO watched_folders (path, collection_id, added_at) VALUES (?, ?, ?)",
        [(row[0], ids.get(row[1]), row[2]) for row in source.execute(
            "SELECT path, collection_id, added_at FROM watched_folders")])
    return ids


def _merge_sessions(conn: sqlite3.Connection, source: sqlite3.Connection, collections: dict[int, int]) -> tuple[int, int]:
    """Every chat with its messages and scope; a chat whose id is taken gets a new one. Returns (added, renamed)."""
    added = renamed = 0
    for session in source.execute("SELECT * FROM sessions ORDER BY created_at"):
        session_id = session["id"]
        if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            session_id = new_session_id()
            renamed += 1
        conn.execute("INSERT INTO sessions (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                     (session_id, session["title"], session["created_at"], session["updated_at"]))
        conn.executemany(
            "INSERT INTO messages (session_id, role, content, thinking, extra, tokens, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(session_id, m["role"], m["content"], m["thinking"], m["extra"], m["tokens"],
              STATUS_INTERRUPTED if m["status"] == STATUS_STREAMING else m["status"], m["created_at"])
             for m in source.execute("SELECT * FROM messages WHERE session_id = ? ORDER BY id", (session["id"],))])
        conn.executemany("INSERT INTO session_collections VALUES (?, ?)", [
            (session_id, collections[row[0]]) for row in source.execute(
                "SELECT collection_id FROM session_collections WHERE session_id = ?", (session["id"],))])
        conn.executemany(
            "INSERT INTO session_scope_changes (session_id, collections, changed_at) VALUES (?, ?, ?)",
            [(session_id, row[0], row[1]) for row in source.execute(
                "SELECT collections, changed_at FROM session_scope_changes WHERE session_id = ? ORDER BY id",
                (session["id"],))])
        added += 1
    return added, renamed


def _merge_cache(conn: sqlite3.Connection, source: sqlite3.Connection) -> None:
    """The exported key-value rows (embedding cache, docstore) that the target lacks: a later re-ingest is cheaper."""
    rows: Iterator[tuple] = source.execute("SELECT collection, key, value FROM kv")
    conn.executemany("INSERT OR IGNORE INTO kv (collection, key, value) VALUES (?, ?, ?)", rows)
