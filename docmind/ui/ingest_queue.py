"""Background ingestion for the Documents tab: uploads wait in a queue, one worker ingests them file by file.

Chatting keeps working meanwhile; every tab (and a reloaded page) sees the same per-file status.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docmind.config import Settings
from docmind.storage import Database
from docmind.ui.imports import import_heavy_libraries

if TYPE_CHECKING:
    from docmind.cache import Ingestor

log = logging.getLogger(__name__)

WAITING = "waiting"
WORKING = "working"
DONE = "done"
FAILED = "failed"
HISTORY = 200


@dataclass
class FileJob:
    """One uploaded file on its way into the library."""

    id: int
    name: str
    path: Path
    batch: int = 0
    """Files uploaded together share a batch number; later uploads have higher ones."""
    state: str = WAITING
    detail: str = "waiting"
    chunks: int = 0

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


class IngestQueue:
    """Copies uploads into the library folder and ingests them in one background thread."""

    def __init__(self, settings: Settings, db: Database, library_dir: Path) -> None:
        self._settings = settings
        self._db = db
        self._library_dir = library_dir
        self._queue: queue.Queue[FileJob] = queue.Queue()
        self._jobs: list[FileJob] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._batches = 0
        self._worker: threading.Thread | None = None

    def submit(self, uploads: list[str | Path]) -> list[FileJob]:
        """Queue uploaded files (Gradio temp paths) as one batch; return their jobs at once."""
        taken: set[str] = set()
        copies = []
        for upload in map(Path, uploads):
            target = self._library_path(upload.name, taken)
            shutil.copyfile(upload, target)
            copies.append((upload.name, target))
        with self._lock:
            self._batches += 1
            jobs = [FileJob(self._next_id + n, name, target, self._batches) for n, (name, target) in
                    enumerate(copies, start=1)]
            self._next_id += len(jobs)
            self._jobs = [*self._jobs, *jobs][-HISTORY:]
        for job in jobs:
            self._queue.put(job)
        self._ensure_worker()
        return jobs

    def jobs(self) -> list[FileJob]:
        """The recent jobs, oldest first."""
        with self._lock:
            return list(self._jobs)

    def _library_path(self, name: str, taken: set[str]) -> Path:
        """Where an upload is kept; two files of one upload with the same name do not overwrite each other."""
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem} ({n}){suffix}"
        taken.add(candidate)
        return self._library_dir / candidate

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
                job = self._queue.get(timeout=30)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            self._ingest(ingestor, job)

    def _ingest(self, ingestor: Ingestor, job: FileJob) -> None:
        from docmind.cache import IngestProgress

        job.state, job.detail = WORKING, "reading"

        def progress(event: IngestProgress) -> None:
            if event.status == "embedding":
                job.detail = f"embedding: {_chunks(event.chunks)}"
            elif event.status == "hashing":
                job.detail = "reading"

        try:
            report = ingestor.ingest([job.path], progress)
        except Exception as error:  # a crash in one file must not stop the queue
            log.exception("ingesting %s failed", job.path)
            job.state, job.detail = FAILED, f"failed: {error}"
            return
        chunks = self._db.read("SELECT chunks FROM documents WHERE source = ?", (str(job.path),))
        job.chunks = chunks[0][0] if chunks else 0
        if report.files_failed:
            job.state, job.detail = FAILED, f"failed: {report.files_failed[0].error}"
            job.path.unlink(missing_ok=True)
        elif report.files_skipped:
            job.state = FAILED
            job.detail = f"failed: DocMind cannot read {job.path.suffix or 'extension-less'} files"
            job.path.unlink(missing_ok=True)
        elif report.files_unchanged:
            job.state, job.detail = DONE, f"already in the library ({_chunks(job.chunks)})"
        else:
            verb = "updated" if report.files_changed else "added"
            job.state, job.detail = DONE, f"{verb}: {_chunks(job.chunks)}"


def _chunks(count: int) -> str:
    return f"{count} chunk" if count == 1 else f"{count} chunks"
