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
from docmind.model.errors import DiskSpaceError, DownloadCancelledError, ModelError
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
    """What is happening, in plain words."""
    detail: str = ""
    """The technical reason of a failure (also in the log), shown behind a "Details" toggle."""

    @property
    def action(self) -> str:
        """What the download button does now: start, resume what is on disk, or try again from nothing."""
        if self.phase in (DownloadPhase.PAUSED, DownloadPhase.FAILED) and self.bytes_done:
            return "Resume download"
        return "Try again" if self.phase is DownloadPhase.FAILED else "Download"


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
            if hub_id != self._state.model:  # another model: nothing of it is known to be on disk yet
                self._state = DownloadState()
            self._state = replace(self._state, phase=DownloadPhase.RUNNING, model=hub_id,
                                  message="Connecting to the model hub…", detail="")
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
                         message="Paused. What was downloaded is kept: Resume download continues from it.")
            return
        except Exception as error:  # any failure is shown on the page in plain words, never a trace
            log.warning("model download of %s failed: %s", hub_id, error, exc_info=not isinstance(error, ModelError))
            self._update(phase=DownloadPhase.FAILED, speed=0.0, eta_seconds=None,
                         message=self._failure_message(error), detail=str(error))
            return
        self._update(phase=DownloadPhase.DONE, eta_seconds=0.0, message="Downloaded and verified.")
        self._on_done(hub_id)

    def _failure_message(self, error: Exception) -> str:
        """What went wrong, for a person who does not know what a hub or a proxy is."""
        kept = " What was downloaded is kept: Resume download continues from it." if self.state.bytes_done else ""
        if isinstance(error, DiskSpaceError):
            return str(error)
        if _network_problem(error):
            return ("DocMind could not reach the internet to download the model. Check your connection, or use "
                    "a model folder you already have (below)." + kept)
        return "The download stopped before it finished." + (kept or " Try again in a moment.")


def _network_problem(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is a connection that failed, timed out or was cut."""
    import httpx2

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (OSError, httpx2.TransportError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
