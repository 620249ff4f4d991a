"""Background ingestion for the Documents tab: uploads wait in a queue, one worker ingests each upload batch.

Each batch goes to the ingestor in one call (models loaded once, one transaction per file, one bad
file never stops the others) while every file keeps its own status. Chatting keeps working
meanwhile; every tab (and a reloaded page) sees the same per-file status.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docmind.cache.documents import document_chunks
from docmind.cache.library import discard_upload, remove_partial_uploads, store_upload
from docmind.config import Settings
from docmind.storage import Database
from docmind.ui.imports import import_heavy_libraries

if TYPE_CHECKING:
    from docmind.cache import IngestProgress, IngestReport, Ingestor

log = logging.getLogger(__name__)

WAITING = "waiting"
WORKING = "working"
DONE = "done"
FAILED = "failed"
HISTORY = 200
CANCELLED = "stopped: not added (add it again to finish; the work already done is kept)"


@dataclass
class FileJob:
    """One uploaded file on its way into the library."""

    id: int
    name: str
    """The file name the user uploaded."""
    path: Path
    """The library's copy, which is what gets ingested."""
    batch: int = 0
    """Files uploaded together share a batch number; later uploads have higher ones."""
    state: str = WAITING
    detail: str = "waiting"
    chunks: int = 0
    copied: bool = True
    """False when the same content was already in the library folder (under ``path``)."""

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


class IngestQueue:
    """Copies uploads into the library folder and ingests them, a batch at a time, in one background thread."""

    def __init__(self, settings: Settings, db: Database, library_dir: Path) -> None:
        self._settings = settings
        self._db = db
        self._library_dir = library_dir
        self._queue: queue.Queue[list[FileJob]] = queue.Queue()
        self._jobs: list[FileJob] = []
        self._lock = threading.Lock()
        self._copy_lock = threading.Lock()  # two uploads of one content at once still store it once
        self._next_id = 0
        self._batches = 0
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()  # set by ``cancel``: the running ingest stops after its current page
        remove_partial_uploads(library_dir)

    def submit(self, uploads: list[str | Path]) -> list[FileJob]:
        """Queue uploaded files (Gradio temp paths) as one batch; return their jobs at once."""
        with self._lock:
            self._batches += 1
            batch = self._batches
            first_id = self._next_id + 1
            self._next_id += len(uploads)
        jobs = [self._store(first_id + n, Path(upload), batch) for n, upload in enumerate(uploads)]
        with self._lock:
            self._jobs = [*self._jobs, *jobs][-HISTORY:]
        waiting = [job for job in jobs if not job.finished]
        if waiting:
            self._queue.put(waiting)
            self._ensure_worker()
        return jobs

    def cancel(self) -> int:
        """Stop adding files: the running ingest stops after its current page and waiting uploads are dropped.

        Files not yet stored are left out whole (their uploaded copies too); embeddings already computed
        stay cached, so adding them again later is quicker. Returns how many files were stopped.
        """
        stopped = 0
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                break
            for job in batch:
                self._fail(job, CANCELLED)
                stopped += 1
        with self._lock:
            working = [job for job in self._jobs if not job.finished]
        if working:
            self._cancel.set()
        return stopped + len(working)

    def jobs(self) -> list[FileJob]:
        """The recent jobs, oldest first."""
        with self._lock:
            return list(self._jobs)

    def _store(self, job_id: int, upload: Path, batch: int) -> FileJob:
        """The job of one upload, its copy already complete in the library (or failed, saying why)."""
        try:
            with self._copy_lock:
                stored = store_upload(upload, self._library_dir)
        except OSError as error:
            log.warning("could not copy %s into the library: %s", upload, error)
            return FileJob(job_id, upload.name, upload, batch, FAILED,
                           f"failed: could not copy it into the library ({error.strerror or error})", copied=False)
        return FileJob(job_id, stored.name, stored.path, batch, copied=stored.copied)

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="docmind-ingest", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        from docmind.cache import Ingestor

        import_heavy_libraries()  # before the first file needs them, not at the same time as the model load
        ingestor = Ingestor(self._settings, self._db)
        while True:
            try:
                batch = self._queue.get(timeout=30)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            self._ingest(ingestor, batch)

    def _ingest(self, ingestor: Ingestor, batch: list[FileJob]) -> None:
        """Ingest one upload batch in one call, updating each file's job as the ingestor reports it."""
        by_path: dict[str, list[FileJob]] = {}
        for job in batch:
            by_path.setdefault(str(job.path), []).append(job)

        def progress(event: IngestProgress) -> None:
            jobs = by_path.get(event.current_file or "", [])
            if event.status == "hashing":
                for job in jobs:
                    job.state, job.detail = WORKING, "reading"
            elif event.status == "reading" and event.pages_total > 1:
                for job in jobs:
                    job.detail = _pages(event)
            elif event.status == "embedding":
                for job in batch:
                    if job.state == WORKING:
                        job.detail = f"embedding: {_chunks(event.chunks)}"
            elif event.status in ("new", "changed", "unchanged"):
                for job in jobs:
                    self._done(job, event.status)

        self._cancel.clear()
        try:
            report = ingestor.ingest(list(by_path), progress, self._cancel)
        except Exception as error:  # a crash of the whole call fails this batch, never the queue
            log.exception("ingesting an upload of %d files failed", len(batch))
            report = None
            reason = f"failed: {error}"
        for job in batch:
            if not job.finished:
                self._fail(job, reason if report is None else _failure(report, str(job.path)))

    def _done(self, job: FileJob, status: str) -> None:
        job.chunks = document_chunks(self._db, job.path)
        if status == "unchanged" or not job.copied:  # not copied: its content was stored by an earlier upload
            copy = "" if job.path.name == job.name else f" as {job.path.name}"
            job.detail = f"already in the library{copy} ({_chunks(job.chunks)})"
        else:
            job.detail = f"{'updated' if status == 'changed' else 'added'}: {_chunks(job.chunks)}"
        job.state = DONE

    def _fail(self, job: FileJob, detail: str) -> None:
        job.state, job.detail = FAILED, detail
        if job.copied:  # new content that never became a document: keep no copy of it
            discard_upload(job.path, self._library_dir)


def _failure(report: IngestReport, source: str) -> str:
    reason = next((failure.error for failure in report.files_failed if failure.path == source), None)
    if reason is None and report.cancelled:
        return CANCELLED
    return f"failed: {reason or 'not ingested'}"


def _pages(event: IngestProgress) -> str:
    """Where a file of several pages stands: "page 120 of 1000 · 431 passages · about 3 min left"."""
    eta = event.eta_seconds
    left = "" if eta is None else f" · about {round(eta)} s left" if eta < 90 else f" · about {round(eta / 60)} min left"
    return f"page {event.pages_done} of {event.pages_total} · {_chunks(event.chunks)}{left}"


def _chunks(count: int) -> str:
    """A count of chunks, in the user's word for them: passages."""
    return f"{count} passage" if count == 1 else f"{count} passages"
