"""Ingest files into the DocMind database: skip unchanged files before parsing, embed only new chunk text.

A file's chunks and its ``documents`` row are written in one transaction, so an interrupted ingest
(even ``kill -9``) leaves each file either fully old or fully new, and the next run finishes the rest.
torch, transformers and LlamaIndex are imported only when some file actually needs parsing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmind.cache.discovery import FileFailure, discover
from docmind.cache.documents import remove_document
from docmind.cache.embedding_cache import prune_embedding_cache
from docmind.cache.embeddings import default_embed_model_path, embed_model_identity
from docmind.cache.readers import Section, UnreadableFileError, open_file
from docmind.config import Settings, load_settings
from docmind.storage import Database, open_database

if TYPE_CHECKING:
    import sqlite3

    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.schema import TextNode

    from docmind.cache.pipeline import CachedEmbedding, FileChunks
    from docmind.cache.readers import PagedFile

log = logging.getLogger(__name__)

# Files are chunked and embedded in groups of about this much text (roughly 64 chunks), so that
# embedding batches stay full even when files are small; each file is still written on its own.
GROUP_CHARACTERS = 64_000


@dataclass
class IngestProgress:
    """Where an ingest stands: sent to the progress callback after each page, file and embedding batch."""

    files_done: int
    files_total: int
    current_file: str | None
    chunks: int  # chunks embedded by the model so far in this run
    status: str  # "hashing", "reading", "embedding", "new", "changed", "unchanged", "failed" or "done"
    pages_done: int = 0  # pages of ``current_file`` read so far (while "reading")
    pages_total: int = 0
    eta_seconds: float | None = None  # time left for ``current_file``, from its pages so far


ProgressCallback = Callable[[IngestProgress], None]


class IngestCancelled(Exception):
    """The ingest was cancelled; files not yet stored were left out whole."""


@dataclass
class PageFailure:
    """A page that could not be read (OCR or a damaged page); the rest of its file was ingested."""

    path: str
    page: int | None
    error: str


@dataclass
class IngestReport:
    """What one ingest did; ``to_json()`` gives the keys of ``docmind ingest --json``."""

    files_seen: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_failed: list[FileFailure] = field(default_factory=list)
    files_skipped: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    embeddings_computed: int = 0
    embeddings_reused: int = 0  # chunks of new or changed files whose embedding was already cached
    embedding_seconds: float = 0.0
    seconds: float = 0.0
    pages_failed: list[PageFailure] = field(default_factory=list)
    cancelled: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def files_ingested(self) -> int:
        return self.files_new + self.files_changed

    @property
    def succeeded(self) -> bool:
        """True when something was ingested or was already up to date (the CLI exits 0)."""
        return self.files_ingested + self.files_unchanged > 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["embedding_seconds"] = round(self.embedding_seconds, 3)
        return data


@dataclass
class _File:
    """A new or changed file being read, then chunked and embedded a window of pages at a time."""

    path: Path
    sha256: str
    size: int
    mtime: float
    known: bool
    opened: PagedFile
    chunking: FileChunks
    chunks: list[TextNode] = field(default_factory=list)
    pages_done: int = 0
    page_errors: list[PageFailure] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def eta(self) -> float | None:
        if not self.pages_done:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed / self.pages_done * (self.opened.pages - self.pages_done)


@dataclass
class _Batch:
    """Windows of pages of several files, chunked and embedded together once they hold enough text."""

    pieces: dict[Path, tuple[_File, list[Section]]] = field(default_factory=dict)
    characters: int = 0
    complete: list[_File] = field(default_factory=list)  # read to the end: stored after the next embedding

    def add(self, file: _File, section: Section) -> None:
        self.pieces.setdefault(file.path, (file, []))[1].append(section)
        self.characters += len(section.text)

    def drop(self, file: _File) -> None:
        _, sections = self.pieces.pop(file.path, (file, []))
        self.characters -= sum(len(section.text) for section in sections)


@dataclass
class _Run:
    """Progress bookkeeping of one ingest call."""

    report: IngestReport
    total: int
    callback: ProgressCallback
    cancel: threading.Event | None
    done: int = 0
    chunks: int = 0

    def notify(self, current: str | None, status: str, embedded: int = 0) -> None:
        self.chunks += embedded
        self.callback(IngestProgress(self.done, self.total, current, self.chunks, status))

    def page(self, file: _File) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise IngestCancelled
        self.callback(IngestProgress(self.done, self.total, str(file.path), self.chunks, "reading",
                                     file.pages_done, file.opened.pages, file.eta()))

    def finish(self, current: str, status: str) -> None:
        self.done += 1
        self.callback(IngestProgress(self.done, self.total, current, self.chunks, status))

    def fail(self, path: Path, error: str) -> None:
        self.report.files_failed.append(FileFailure(str(path), error))
        self.finish(str(path), "failed")


@dataclass(frozen=True)
class _Known:
    sha256: str
    size: int
    embed_model: str | None


class Ingestor:
    """Ingests paths into one database with one embedding model; reusable across calls in a process."""

    def __init__(self, settings: Settings | None = None, db: Database | None = None) -> None:
        self.settings = settings or load_settings()
        self.db = db or open_database(self.settings.db_path)
        self.model_path = default_embed_model_path(self.settings.embed_model_path)
        self.identity = embed_model_identity(self.model_path, self.settings.embed_backend)
        self._embedder: CachedEmbedding | None = None
        self._pipeline: IngestionPipeline | None = None

    def ingest(
        self, paths: list[str | Path], progress: ProgressCallback | None = None, cancel: threading.Event | None = None
    ) -> IngestReport:
        """Ingest ``paths`` (files or folders); one bad file never stops the rest.

        Setting ``cancel`` stops the ingest after the page being read: files not yet stored are
        left out whole, and the embeddings already computed stay cached for the next run.
        """
        started = time.perf_counter()
        report = IngestReport()
        found = discover(paths)
        files = found.files + self._stale_files(found.files, report)
        report.files_failed.extend(found.failed)
        report.files_skipped = found.skipped
        report.files_seen = len(files) + len(found.failed)
        run = _Run(report, len(files), progress or (lambda event: None), cancel)
        batch = _Batch()
        try:
            for path in files:
                self._read(path, batch, run)
            self._flush(batch, run)
        except IngestCancelled:
            report.cancelled = True
            report.notices.append(f"Ingest cancelled: {run.total - run.done} files were not added (or not updated).")
        if self._embedder is not None:
            counters = self._embedder.take_counters()
            report.embeddings_computed, report.embeddings_reused, report.embedding_seconds = counters
        if report.chunks_added or report.chunks_removed:
            prune_embedding_cache(self.db, self.identity)
        report.seconds = time.perf_counter() - started
        run.notify(None, "done")
        return report

    def _read(self, path: Path, batch: _Batch, run: _Run) -> None:
        """Read ``path`` page by page into ``batch``, embedding each time it fills; skip it if unchanged.

        Only reading is guarded: a file that cannot be read fails alone, while an error in embedding
        or storing (which concerns every file) stops the ingest.
        """
        run.notify(str(path), "hashing")
        try:
            file = self._open_if_changed(path)
        except Exception as error:
            run.fail(path, _unreadable(path, error))
            return
        if file is None:
            run.report.files_unchanged += 1
            run.finish(str(path), "unchanged")
            return
        sections = iter(file.opened.sections)
        while True:
            try:
                section = next(sections, None)
            except Exception as error:
                batch.drop(file)
                run.fail(path, _unreadable(path, error))
                return
            if section is None:
                break
            file.pages_done += 1
            if section.error:
                file.page_errors.append(PageFailure(str(path), section.page, section.error))
            batch.add(file, section)
            run.page(file)
            if batch.characters >= GROUP_CHARACTERS:
                self._flush(batch, run)
        batch.complete.append(file)

    def _flush(self, batch: _Batch, run: _Run) -> None:
        """Chunk and embed the batch's windows together, then store each file read to its end, in its own transaction."""
        pieces = [(file.chunking, sections) for file, sections in batch.pieces.values()]
        files = [file for file, _ in batch.pieces.values()]
        if pieces:
            from docmind.cache.pipeline import chunk_sections

            current = str(files[-1].path)
            self.embedder.on_batch(lambda count: run.notify(current, "embedding", count))
            try:
                for file, chunks in zip(files, chunk_sections(self.pipeline, pieces)):
                    file.chunks.extend(_compact(chunks))
            finally:
                self.embedder.on_batch(None)
        batch.pieces, batch.characters = {}, 0
        complete, batch.complete = batch.complete, []
        for file in complete:
            self._finish(file, run)

    def _finish(self, file: _File, run: _Run) -> None:
        """Store a file read and embedded to its end (or fail it when no text came out of it)."""
        run.report.pages_failed.extend(file.page_errors)
        for failure in file.page_errors:
            run.report.notices.append(f"{failure.path}: page {failure.page} was left out: {failure.error}")
        if not file.chunks:
            reason = f"page {file.page_errors[0].page}: {file.page_errors[0].error}" if file.page_errors else ""
            run.fail(file.path, f"no text found in the file{f' ({reason})' if reason else ''}")
            return
        added, removed = self.db.write(lambda conn: self._store(conn, file))
        run.report.chunks_added += added
        run.report.chunks_removed += removed
        if file.known:
            run.report.files_changed += 1
        else:
            run.report.files_new += 1
        run.finish(str(file.path), "changed" if file.known else "new")

    def _stale_files(self, files: list[Path], report: IngestReport) -> list[Path]:
        """Documents embedded by another model: re-embed them all, or drop them if their file is gone."""
        rows = self.db.read(
            "SELECT source, embed_model FROM documents WHERE embed_model IS NOT ?", (self.identity,)
        )
        if not rows:
            return []
        report.notices.append(
            f"The embedding model changed ({rows[0]['embed_model']} -> {self.identity}): "
            f"re-embedding all {len(rows)} documents already in the library."
        )
        log.warning(report.notices[-1])
        listed = set(files)
        stale = []
        for row in rows:
            path = Path(row["source"])
            if path in listed:
                continue
            if path.is_file():
                stale.append(path)
            else:
                remove_document(self.db, row["source"])
                report.notices.append(f"{row['source']} no longer exists: removed it from the library.")
        return stale

    def _open_if_changed(self, path: Path) -> _File | None:
        """The file opened for reading, or None when its content and embedding model are unchanged (no parsing then)."""
        data, mtime = _read_checked(path, self.settings.max_file_size_mb)
        digest = hashlib.sha256(data).hexdigest()
        known = self._known(str(path))
        if known and known.sha256 == digest and known.size == len(data) and known.embed_model == self.identity:
            return None
        from docmind.cache.pipeline import FileChunks

        opened = open_file(data, path, ocr=self.settings.ocr)
        return _File(path, digest, len(data), mtime, known is not None, opened, FileChunks(path, opened.title))

    def _known(self, source: str) -> _Known | None:
        rows = self.db.read("SELECT sha256, size, embed_model FROM documents WHERE source = ?", (source,))
        return _Known(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    @property
    def embedder(self) -> CachedEmbedding:
        if self._embedder is None:
            from llama_index.core.ingestion import IngestionCache

            from docmind.cache.pipeline import CachedEmbedding
            from docmind.storage.kv import SQLiteKVStore

            cache = IngestionCache(cache=SQLiteKVStore(self.db), collection="embeddings")
            self._embedder = CachedEmbedding(cache=cache, model_path=str(self.model_path), identity=self.identity,
                                             backend=self.settings.embed_backend)
        return self._embedder

    @property
    def pipeline(self) -> IngestionPipeline:
        if self._pipeline is None:
            from docmind.cache.pipeline import build_pipeline

            self._pipeline = build_pipeline(self.embedder)
        return self._pipeline

    def _store(self, conn: sqlite3.Connection, parsed: _File) -> tuple[int, int]:
        """Replace the file's chunks and upsert its ``documents`` row, inside the caller's transaction."""
        from docmind.storage.vectors import upsert_chunks

        chunks = parsed.chunks
        source = str(parsed.path)
        old = Counter(row[0] for row in conn.execute("SELECT text FROM chunks WHERE source = ?", (source,)))
        new = Counter(chunk.text for chunk in chunks)
        conn.execute("DELETE FROM chunks WHERE source = ?", (source,))
        upsert_chunks(conn, chunks)
        conn.execute(
            """INSERT INTO documents (source, sha256, size, mtime, chunks, embed_model, ingested_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(source) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
                   mtime = excluded.mtime, chunks = excluded.chunks, embed_model = excluded.embed_model,
                   ingested_at = excluded.ingested_at""",
            (source, parsed.sha256, parsed.size, parsed.mtime, len(chunks), self.identity, _now()),
        )
        return sum((new - old).values()), sum((old - new).values())


def _unreadable(path: Path, error: Exception) -> str:
    """The one-line reason a file could not be read (a parser bug on one odd file is logged in full)."""
    if isinstance(error, UnreadableFileError):
        return str(error)
    log.error("reading %s failed", path, exc_info=error)
    return f"could not be read: {type(error).__name__}: {error}"


def _compact(chunks: list[TextNode]) -> list[TextNode]:
    """Hold each chunk's vector as float32 (1.5 kB) rather than a list of Python floats (12 kB) until it is stored."""
    import numpy as np

    for chunk in chunks:
        chunk.embedding = np.asarray(chunk.embedding, dtype=np.float32)
    return chunks


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_checked(path: Path, max_mb: float) -> tuple[bytes, float]:
    """The bytes and mtime of ``path`` if it is a regular, non-empty file within the size limit."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise UnreadableFileError(f"cannot open: {error.strerror or error}") from error
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFileError("not a regular file (a pipe, socket or device)")
    if info.st_size == 0:
        raise UnreadableFileError("empty file (0 bytes)")
    limit = int(max_mb * 1024 * 1024)
    if info.st_size > limit:
        raise UnreadableFileError(
            f"file is {info.st_size / 1048576:.1f} MB, over the {max_mb:g} MB limit "
            "(raise DOCMIND_MAX_FILE_SIZE_MB to ingest it)"
        )
    try:
        return path.read_bytes(), info.st_mtime
    except PermissionError as error:
        raise UnreadableFileError("permission denied: DocMind may not read this file") from error
    except OSError as error:
        raise UnreadableFileError(f"cannot read: {error.strerror or error}") from error


def ingest_paths(
    paths: list[str | Path], *, settings: Settings | None = None, progress: ProgressCallback | None = None
) -> IngestReport:
    """Ingest ``paths`` into the data dir's database (see ``Ingestor``)."""
    return Ingestor(settings).ingest(paths, progress)
