"""Watched folders: while the app runs, files added, changed, renamed or deleted under them follow into the library.

``watchdog`` reports file events; a file is ingested once it has been quiet (no event, same size and
modification time) for ``watch_debounce_seconds``, so a file still being written is read once,
complete. A periodic rescan (``watch_rescan_seconds``) catches what events miss (network drives,
events lost under load); at start-up every file goes through the ingest hash check, which finds what
changed while the app was closed. A folder can be tied to a collection: its documents join it.

Each folder's state (watching, scanning, N files waiting, last error) is written to its row, so the
Documents tab and ``docmind watch list`` in another process both see it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmind.cache.collections import get_collection
from docmind.cache.discovery import discover
from docmind.cache.documents import remove_document
from docmind.cache.readers import is_supported
from docmind.config import Settings
from docmind.storage import Database
from docmind.storage.sessions import now

if TYPE_CHECKING:
    from docmind.cache.ingest import IngestProgress, Ingestor

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
"""A running watcher rewrites each folder's state at least this often; older states were left by a closed app."""
WATCHING = "watching"
SCANNING = "scanning"
NOT_RUNNING = "not watched while DocMind is closed"
MISSING = "folder not found (unplugged or renamed?)"


class WatchError(ValueError):
    """A folder that cannot be watched, or is not watched; the message says why."""


@dataclass(frozen=True)
class WatchedFolder:
    """A folder the library follows, with its collection, state and how many documents came from it."""

    path: str
    collection: str | None
    state: str
    waiting: int
    last_error: str
    files: int

    def to_json(self) -> dict[str, Any]:
        """The ``docmind watch list --json`` form."""
        return {"path": self.path, "collection": self.collection, "state": self.state, "files": self.files,
                "waiting": self.waiting, "last_error": self.last_error}


def add_watched_folder(db: Database, path: str | Path, collection: str | None = None) -> WatchedFolder:
    """Watch ``path`` (an existing folder), tying it to ``collection`` if given; watching it again changes the tie."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise WatchError(f"{folder} is not a folder; give the folder whose files DocMind should follow.")
    folder = folder.resolve()
    collection_id = get_collection(db, collection).id if collection else None
    db.execute(
        """INSERT INTO watched_folders (path, collection_id, added_at) VALUES (?, ?, ?)
           ON CONFLICT(path) DO UPDATE SET collection_id = excluded.collection_id""",
        (str(folder), collection_id, now()),
    )
    return _folder(db, str(folder))


def remove_watched_folder(db: Database, path: str | Path) -> WatchedFolder:
    """Stop watching ``path``; its documents stay in the library."""
    folder = _watched_path(db, path)
    removed = _folder(db, folder)
    db.execute("DELETE FROM watched_folders WHERE path = ?", (folder,))
    return removed


def list_watched_folders(db: Database) -> list[WatchedFolder]:
    """Every watched folder with its state (as the running app last wrote it)."""
    return [_folder(db, row[0]) for row in db.read("SELECT path FROM watched_folders ORDER BY path")]


def _watched_path(db: Database, path: str | Path) -> str:
    candidates = {str(Path(path).expanduser().absolute()), str(Path(path).expanduser().resolve())}
    for candidate in candidates:
        if db.read("SELECT 1 FROM watched_folders WHERE path = ?", (candidate,)):
            return candidate
    raise WatchError(f"{path} is not a watched folder; `docmind watch list` shows them.")


def _folder(db: Database, path: str) -> WatchedFolder:
    row = db.read(
        """SELECT w.path, c.name, w.state, w.waiting, w.last_error, w.state_at,
                  (SELECT COUNT(*) FROM documents d WHERE substr(d.source, 1, length(w.path) + 1) = w.path || ?)
           FROM watched_folders w LEFT JOIN collections c ON c.id = w.collection_id WHERE w.path = ?""",
        (os.sep, path),
    )[0]
    state, waiting = row[2], row[3]
    if not _fresh(row[5]):
        state, waiting = NOT_RUNNING, 0
    return WatchedFolder(row[0], row[1], state, waiting, row[4], row[6])


def _fresh(stamp: str | None) -> bool:
    if not stamp:
        return False
    age = datetime.now(timezone.utc) - datetime.fromisoformat(stamp)
    return age.total_seconds() < 3 * HEARTBEAT_SECONDS


@dataclass
class _Pending:
    """A path with recent events: processed once quiet for the debounce time with an unchanged size and mtime."""

    last_event: float
    signature: tuple[int, float] | None


@dataclass
class _Folder:
    path: Path
    collection_id: int | None
    watch: Any = None  # the watchdog ObservedWatch
    state: str = WATCHING
    last_error: str = ""
    written: tuple = ()
    written_at: float = 0.0
    next_scan: float = 0.0
    full_scan: bool = True  # the first scan hashes every file: it finds what changed while the app was closed


class FolderWatcher:
    """Keeps the library in sync with the watched folders, in one background thread of the app process."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.debounce = settings.watch_debounce_seconds
        self.rescan = settings.watch_rescan_seconds
        self._folders: dict[str, _Folder] = {}
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._ingestor: Ingestor | None = None

    def start(self) -> None:
        """Start watching (once); folders added later, in this process or another, are picked up within a second."""
        if self._thread is not None:
            return
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="docmind-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)  # an ingest under way ends on its own: each file is one transaction

    def scan_now(self) -> None:
        """Rescan every watched folder at the next tick (the Documents tab's "Check now")."""
        with self._lock:
            for folder in self._folders.values():
                folder.next_scan = 0.0
        self._wake.set()

    # ----- the loop -----

    def _run(self) -> None:
        next_sync = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_sync:
                    self._sync_folders()
                    next_sync = time.monotonic() + 1.0
                self._scan_due_folders()
                self._process_quiet_files()
                self._write_states()
            except Exception:  # the watcher must outlive any one failure; the next tick tries again
                log.exception("the folder watcher hit an error")
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def _sync_folders(self) -> None:
        """Follow the ``watched_folders`` table: start watching new rows, stop watching removed ones."""
        rows = {row[0]: row[1] for row in self.db.read("SELECT path, collection_id FROM watched_folders")}
        for path in set(self._folders) - set(rows):
            folder = self._folders.pop(path)
            if folder.watch is not None:
                self._observer.unschedule(folder.watch)
            log.info("stopped watching %s", path)
        for path, collection_id in rows.items():
            folder = self._folders.get(path)
            if folder is None:
                folder = self._folders[path] = _Folder(Path(path), collection_id)
                log.info("watching %s", path)
            if folder.collection_id != collection_id:  # tied to another collection: fill it at once
                folder.collection_id, folder.next_scan = collection_id, 0.0
            if folder.watch is None and folder.path.is_dir():
                folder.watch = self._observer.schedule(_Events(self), str(folder.path), recursive=True)
                if folder.state == MISSING:  # the folder is back: catch up now
                    folder.next_scan = 0.0

    def _scan_due_folders(self) -> None:
        for folder in list(self._folders.values()):
            if time.monotonic() < folder.next_scan:
                continue
            folder.next_scan = time.monotonic() + self.rescan
            if not folder.path.is_dir():
                folder.state, folder.full_scan = MISSING, True  # never removes documents: the drive may come back
                if folder.watch is not None:
                    self._observer.unschedule(folder.watch)
                    folder.watch = None
                continue
            folder.state = SCANNING
            self._write_states()
            self._scan(folder)
            folder.state = WATCHING

    def _scan(self, folder: _Folder) -> None:
        """Ingest the folder's new and changed files and drop the documents of files that are gone."""
        found = discover([folder.path])
        files = found.files if folder.full_scan else [path for path in found.files if self._changed(path)]
        folder.full_scan = False
        prefix = str(folder.path) + os.sep
        present = {str(path) for path in found.files}
        for (source,) in self.db.read(
            "SELECT source FROM documents WHERE substr(source, 1, ?) = ?", (len(prefix), prefix)
        ):
            if source not in present and not Path(source).exists():
                remove_document(self.db, source)
                log.info("removed %s from the library: the file is gone", source)
        if files:
            self._ingest(files, folder)
        self._join_collection(folder)

    def _changed(self, path: Path) -> bool:
        """A cheap test for rescans: the file's size or modification time differs from the library's."""
        rows = self.db.read("SELECT size, mtime FROM documents WHERE source = ?", (str(path),))
        if not rows:
            return True
        try:
            info = path.stat()
        except OSError:
            return True
        return (info.st_size, info.st_mtime) != (rows[0][0], rows[0][1])

    def _process_quiet_files(self) -> None:
        """Apply the files whose last event is older than the debounce time and whose size and mtime held still."""
        due = []
        with self._lock:
            for path, pending in list(self._pending.items()):
                if time.monotonic() - pending.last_event < self.debounce:
                    continue
                signature = _signature(Path(path))
                if signature != pending.signature:  # still being written: wait another debounce period
                    pending.signature, pending.last_event = signature, time.monotonic()
                    continue
                due.append(path)
                del self._pending[path]
        for folder in list(self._folders.values()):
            prefix = str(folder.path) + os.sep
            mine = [Path(path) for path in due if path.startswith(prefix)]
            gone = [path for path in mine if not path.exists()]
            for path in gone:
                self._forget(path)
            present = [path for path in mine if path.exists()]  # files, and folders moved in (ingest walks them)
            if present:
                self._ingest(present, folder)
                self._join_collection(folder)

    def _forget(self, path: Path) -> None:
        """A deleted (or renamed-away) file or folder: remove its documents from the library."""
        prefix = str(path) + os.sep
        for (source,) in self.db.read(
            "SELECT source FROM documents WHERE source = ? OR substr(source, 1, ?) = ?", (str(path), len(prefix), prefix)
        ):
            remove_document(self.db, source)
            log.info("removed %s from the library: the file is gone", source)

    def _ingest(self, files: list[Path], folder: _Folder) -> None:
        report = self.ingestor.ingest(files, _log_progress)
        for failure in report.files_failed:
            log.warning("could not add %s: %s", failure.path, failure.error)
        if report.files_failed:
            last = report.files_failed[-1]
            folder.last_error = f"{Path(last.path).name}: {last.error}"

    def _join_collection(self, folder: _Folder) -> None:
        if folder.collection_id is None:
            return
        prefix = str(folder.path) + os.sep
        self.db.execute(
            """INSERT OR IGNORE INTO collection_documents (collection_id, source)
               SELECT ?, source FROM documents WHERE substr(source, 1, ?) = ?""",
            (folder.collection_id, len(prefix), prefix),
        )

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            from docmind.cache.ingest import Ingestor

            self._ingestor = Ingestor(self.settings, self.db)
        return self._ingestor

    # ----- events and states -----

    def _event(self, *paths: str) -> None:
        """A watchdog event touched ``paths``: (re)start their quiet period."""
        with self._lock:
            for path in paths:
                if path and _followed(Path(path)):
                    self._pending[path] = _Pending(time.monotonic(), _signature(Path(path)))

    def _write_states(self) -> None:
        """Write each folder's state to its row when it changed, and as a heartbeat every few seconds."""
        with self._lock:
            waiting = {path: sum(p.startswith(path + os.sep) for p in self._pending) for path in self._folders}
        for path, folder in list(self._folders.items()):
            state = (folder.state, waiting.get(path, 0), folder.last_error)
            if state == folder.written and time.monotonic() - folder.written_at < HEARTBEAT_SECONDS:
                continue
            self.db.execute(
                "UPDATE watched_folders SET state = ?, waiting = ?, last_error = ?, state_at = ? WHERE path = ?",
                (*state, datetime.now(timezone.utc).isoformat(timespec="seconds"), path),
            )
            folder.written, folder.written_at = state, time.monotonic()


class _Events:
    """The watchdog handler: every file event goes to the watcher's pending paths."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write") or (event.is_directory and event.event_type == "modified"):
            return  # a folder is "modified" whenever a file in it changes: that file has its own event
        self.watcher._event(os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or ""))
        self.watcher._wake.set()


def _followed(path: Path) -> bool:
    """Files the library would take (supported, not hidden), and folders (renamed or deleted ones matter)."""
    if any(part.startswith((".", "~$")) for part in path.parts[1:]):
        return False
    return path.is_dir() or not path.exists() or is_supported(path)


def _signature(path: Path) -> tuple[int, float] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime


def _log_progress(event: IngestProgress) -> None:
    if event.status in ("new", "changed"):
        log.info("watched folder: ingested %s (%s)", event.current_file, event.status)
