"""What every tab shares: settings, the database, and the model as it loads in the background."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from docmind.cache.documents import library_stats
from docmind.cache.library import library_dir
from docmind.cache.watch import FolderWatcher
from docmind.config import Settings, load_settings, save_settings
from docmind.model.lifecycle import ModelPhase as ModelPhase  # re-exported: the tabs read the phase from here
from docmind.model.lifecycle import ModelState
from docmind.storage import Database, open_database
from docmind.ui.imports import import_heavy_libraries
from docmind.ui.ingest_queue import IngestQueue
from docmind.ui.model_download import ModelDownload

log = logging.getLogger(__name__)


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
    watcher: FolderWatcher = field(init=False)
    _listeners: list[Callable[[Settings], None]] = field(default_factory=list)
    _warm_ups: list[Callable[[], object]] = field(default_factory=list)
    _started: bool = False
    _start_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.download = ModelDownload(self.settings, on_done=self.model_downloaded)
        self.watcher = FolderWatcher(self.settings, self.db)

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
        self.watcher.start()

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
            save_settings(self.settings.data_dir, model=hub_id)
        settings = load_settings(data_dir=self.settings.data_dir)
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
            model=ModelState(settings, prepare=import_heavy_libraries),
            ingest=IngestQueue(settings, db, uploads),
            upload_dir=upload_dir,
            library_dir=uploads,
        )

    def library_size(self) -> tuple[int, int]:
        """How many documents and chunks the library holds now."""
        stats = library_stats(self.db)
        return stats.documents, stats.chunks
