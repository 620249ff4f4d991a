"""A model download that runs in the background of the app, with pause and resume.

Pausing cancels the download; the partial files stay on disk and resuming continues from them.
The download keeps running when the page is closed or reloaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from docmind.config import Settings
from docmind.model.download import DownloadProgress, download_model
from docmind.model.errors import DownloadCancelledError, ModelError
from docmind.model.registry import local_dir_for

log = logging.getLogger(__name__)

PAUSE_WAIT_SECONDS = 30


class DownloadPhase(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    DONE = "done"


@dataclass(frozen=True)
class DownloadState:
    """A snapshot for the progress bar."""

    phase: DownloadPhase = DownloadPhase.IDLE
    model: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    speed: float = 0.0
    eta_seconds: float | None = None
    message: str = ""


class ModelDownload:
    """One download at a time for the whole app; ``on_done`` runs (in the download thread) when it finishes."""

    def __init__(self, settings: Settings, on_done: Callable[[str], None]) -> None:
        self._settings = settings
        self._on_done = on_done
        self._lock = threading.Lock()
        self._state = DownloadState()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> DownloadState:
        with self._lock:
            return self._state

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def start(self, hub_id: str) -> None:
        """Start (or resume) downloading ``hub_id``; a running download of another model is refused."""
        pausing = self._thread
        if pausing is not None and self._cancel.is_set():
            pausing.join(PAUSE_WAIT_SECONDS)  # a pause still winding down: let it end, then resume
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running and self._state.model != hub_id:
                raise ModelError(f"{self._state.model} is downloading; pause it before choosing another model.")
            if running:
                return
            self._cancel = threading.Event()
            self._state = replace(self._state, phase=DownloadPhase.RUNNING, model=hub_id, message="Starting…")
            self._thread = threading.Thread(target=self._run, args=(hub_id,), name="docmind-download", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Stop at the next chunk, keeping what was downloaded."""
        self._cancel.set()

    def _progress(self, progress: DownloadProgress) -> None:
        self._update(bytes_done=progress.bytes_done, bytes_total=progress.bytes_total,
                     speed=progress.speed_bytes_per_s, eta_seconds=progress.eta_seconds,
                     message=f"Downloading {progress.file}")

    def _run(self, hub_id: str) -> None:
        try:
            download_model(hub_id, local_dir_for(self._settings, hub_id), progress=self._progress,
                           cancel=self._cancel)
        except DownloadCancelledError:
            self._update(phase=DownloadPhase.PAUSED, speed=0.0, eta_seconds=None,
                         message="Paused. The part already downloaded is kept; Resume continues from it.")
            return
        except ModelError as error:
            self._update(phase=DownloadPhase.FAILED, speed=0.0, eta_seconds=None, message=str(error))
            return
        except Exception as error:  # any failure is shown on the page, never a trace
            log.exception("model download failed")
            self._update(phase=DownloadPhase.FAILED, speed=0.0, eta_seconds=None,
                         message=f"The download failed: {error}. Try again; it resumes where it stopped.")
            return
        self._update(phase=DownloadPhase.DONE, eta_seconds=0.0, message="Downloaded and verified.")
        self._on_done(hub_id)
