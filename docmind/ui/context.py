"""What every tab shares: settings, the database, and the model as it loads in the background."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from docmind.config import Settings
from docmind.storage import Database, open_database
from docmind.ui.ingest_queue import IngestQueue

log = logging.getLogger(__name__)


class ModelPhase(str, Enum):
    MISSING = "missing"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelStatus:
    """What the status line and the chat tab say about the model."""

    phase: ModelPhase
    name: str
    detail: str = ""


class ModelState:
    """Loads the generation engine once, in a background thread, and reports its phase."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status = ModelStatus(ModelPhase.MISSING, self._name())

    def _name(self) -> str:
        return str(self._settings.model_path or self._settings.model)

    @property
    def status(self) -> ModelStatus:
        with self._lock:
            return self._status

    @property
    def ready(self) -> bool:
        return self.status.phase is ModelPhase.READY

    def _set(self, phase: ModelPhase, detail: str = "") -> None:
        with self._lock:
            self._status = ModelStatus(phase, self._name(), detail)

    def use_settings(self, settings: Settings) -> None:
        """Switch to other settings (a model folder the user picked, a finished download) and reload."""
        self._settings = settings
        self._set(ModelPhase.MISSING)

    def start_loading(self) -> None:
        """Load the model in the background when it is on disk; do nothing while one load runs."""
        try:  # TEMP until the model layer lands
            from docmind.model import model_ready
        except ImportError:
            return

        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._status.phase is ModelPhase.READY:
                return
        if not model_ready(self._settings):
            self._set(ModelPhase.MISSING, "No model on disk yet: answers are search results.")
            return
        self._set(ModelPhase.LOADING, "Loading the model…")
        self._thread = threading.Thread(target=self._load, name="docmind-model-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        from docmind.model import get_engine

        try:
            engine = get_engine(self._settings)
            self._set(ModelPhase.READY, getattr(engine, "device", ""))
        except Exception as error:  # shown to the user in the status line, never as a trace
            log.exception("loading the model failed")
            self._set(ModelPhase.FAILED, str(error))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running load to finish; True when the model is ready."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.ready


@dataclass
class AppContext:
    """Shared by all tabs of one running app."""

    settings: Settings
    db: Database
    model: ModelState
    ingest: IngestQueue
    upload_dir: Path
    library_dir: Path

    @classmethod
    def create(cls, settings: Settings, upload_dir: Path) -> AppContext:
        """The context of a new app; uploads are kept in ``<data dir>/library`` so citations stay valid."""
        library_dir = settings.data_dir / "library"
        library_dir.mkdir(parents=True, exist_ok=True)
        db = open_database(settings.db_path)
        return cls(
            settings=settings,
            db=db,
            model=ModelState(settings),
            ingest=IngestQueue(settings, db, library_dir),
            upload_dir=upload_dir,
            library_dir=library_dir,
        )

    @functools.cached_property
    def device(self) -> str:
        """The hardware the model runs on, as the user should read it."""
        try:
            from docmind.model.hardware import detect_hardware
        except ImportError:
            return "unknown"
        return detect_hardware().summary
