"""What every tab shares: settings, the database, and the model as it loads in the background."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from docmind.cache.documents import library_stats
from docmind.cache.library import library_dir
from docmind.config import Settings, load_settings, save_settings
from docmind.model.errors import ModelError
from docmind.model.hardware import detect_hardware
from docmind.model.loading import check_model_files
from docmind.model.registry import resolve_model
from docmind.storage import Database, open_database
from docmind.ui.imports import import_heavy_libraries
from docmind.ui.ingest_queue import IngestQueue
from docmind.ui.model_download import ModelDownload

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
        self._switched = False
        problem = self._files_problem()
        self._status = ModelStatus(ModelPhase.MISSING, self._name(), problem) if problem else ModelStatus(
            ModelPhase.LOADING, self._name(), "Loading the model…")

    def _files_problem(self) -> str:
        """Why the model cannot load (not downloaded, damaged), or "" when its files are on disk."""
        try:
            check_model_files(resolve_model(self._settings))
        except ModelError as error:
            return str(error)
        return ""

    def _name(self) -> str:
        return str(self._settings.model_path or self._settings.model)

    @property
    def status(self) -> ModelStatus:
        with self._lock:
            return self._status

    def _set(self, phase: ModelPhase, detail: str = "") -> None:
        with self._lock:
            self._status = ModelStatus(phase, self._name(), detail)

    def use_settings(self, settings: Settings) -> None:
        """Switch to other settings (a model folder the user picked, a finished download)."""
        self._settings = settings
        self._switched = True
        self._set(ModelPhase.MISSING)

    def start_loading(self) -> None:
        """Load the model in a background thread when it is on disk; do nothing while a load runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
        problem = self._files_problem()
        if problem:
            self._set(ModelPhase.MISSING, problem)
            return
        self._set(ModelPhase.LOADING, "Loading the model…")
        self._thread = threading.Thread(target=self._load, name="docmind-model-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            import_heavy_libraries()
            from docmind.model.runtime import get_runtime, unload

            if self._switched:  # drop the model loaded under the earlier settings
                self._switched = False
                unload()
            plan = get_runtime(self._settings).loaded.plan
            self._set(ModelPhase.READY, f"{plan.device}, {plan.dtype}, quantization {plan.quantization}")
        except Exception as error:  # shown to the user in the status line, never as a trace
            log.exception("loading the model failed")
            self._set(ModelPhase.FAILED, str(error))


@dataclass
class AppContext:
    """Shared by all tabs of one running app."""

    settings: Settings
    db: Database
    model: ModelState
    ingest: IngestQueue
    upload_dir: Path
    library_dir: Path
    download: ModelDownload = field(init=False)
    _listeners: list[Callable[[Settings], None]] = field(default_factory=list)
    _warm_ups: list[Callable[[], object]] = field(default_factory=list)
    _started: bool = False
    _start_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.download = ModelDownload(self.settings, on_done=self.model_downloaded)

    def on_settings_change(self, listener: Callable[[Settings], None]) -> None:
        """Call ``listener`` with the new settings whenever the user picks another model."""
        self._listeners.append(listener)

    def after_start(self, warm_up: Callable[[], object]) -> None:
        """Run ``warm_up`` in the background once the page is served (slow imports, caches)."""
        self._warm_ups.append(warm_up)

    def started(self) -> None:
        """Load the model and run the warm-ups in the background (once; after the first page load).

        Until then the server has the CPU to itself, so the page becomes usable sooner.
        """
        with self._start_lock:
            if self._started:
                return
            self._started = True
        self.model.start_loading()

        def warm() -> None:
            for warm_up in self._warm_ups:
                try:
                    warm_up()
                except Exception:  # a warm-up is an optimisation; its failure shows up on first real use
                    log.exception("warm-up %s failed", warm_up)

        threading.Thread(target=warm, name="docmind-warm-up", daemon=True).start()

    def switch_settings(self, settings: Settings) -> None:
        """Use new settings (another model) everywhere and load that model in the background."""
        self.settings = settings
        for listener in self._listeners:
            listener(settings)
        self.model.use_settings(settings)
        self.model.start_loading()

    def model_downloaded(self, hub_id: str) -> None:
        """After a download: remember the model in config.toml and load it (unless the environment pins another)."""
        if hub_id != self.settings.model:
            save_settings(model=hub_id)
        settings = load_settings()
        if str(settings.model_path or settings.model) != hub_id:
            log.warning("downloaded %s, but DOCMIND_MODEL/DOCMIND_MODEL_PATH choose %s", hub_id,
                        settings.model_path or settings.model)
            return
        self.switch_settings(settings)

    @classmethod
    def create(cls, settings: Settings, upload_dir: Path) -> AppContext:
        """The context of a new app; uploads are kept in ``<data dir>/library`` so citations stay valid."""
        uploads = library_dir(settings.data_dir)
        uploads.mkdir(parents=True, exist_ok=True)
        db = open_database(settings.db_path)
        return cls(
            settings=settings,
            db=db,
            model=ModelState(settings),
            ingest=IngestQueue(settings, db, uploads),
            upload_dir=upload_dir,
            library_dir=uploads,
        )

    def library_size(self) -> tuple[int, int]:
        """How many documents and chunks the library holds now."""
        stats = library_stats(self.db)
        return stats.documents, stats.chunks

    @functools.cached_property
    def device(self) -> str:
        """The hardware the model runs on, as the user should read it."""
        return detect_hardware().summary
