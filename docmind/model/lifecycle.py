"""The model's life in a running app: load it in the background, report its phase, switch to another.

``ModelState`` is what the UI's status line and chat tab read, and what a command can use to load the
model and wait for it. Switches are serialised: one load runs at a time, and a load that a newer switch
has overtaken neither loads nor reports, so the newest settings always win (see ``runtime.get_runtime``
for the runtime itself, keyed by the resolved model and plan).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from docmind.config import Settings
from docmind.model.errors import ModelError
from docmind.model.loading import check_model_files
from docmind.model.registry import resolve_model

log = logging.getLogger(__name__)


class ModelPhase(str, Enum):
    MISSING = "missing"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class LoadStatus:
    """What the status line and the chat tab say about the model."""

    phase: ModelPhase
    name: str
    detail: str = ""


def _name(settings: Settings) -> str:
    if settings.llm_base_url:
        return f"{settings.llm_model or 'model'} (server)"
    return str(settings.model_path or settings.model)


def _files_problem(settings: Settings) -> str:
    """Why the model cannot load (not downloaded, damaged), or "" when its files are on disk (or a
    model server answers instead)."""
    if settings.llm_base_url:
        return ""
    try:
        check_model_files(resolve_model(settings))
    except ModelError as error:
        return str(error)
    return ""


class ModelState:
    """Loads the generation engine in a background thread and reports its phase.

    ``prepare`` runs in the loading thread before the load (the app imports its heavy libraries there).
    """

    def __init__(self, settings: Settings, *, prepare: Callable[[], object] | None = None) -> None:
        self._settings = settings
        self._prepare = prepare
        self._changed = threading.Condition()
        self._load_lock = threading.Lock()
        self._generation = 0
        """Counts switches; a load started for an older generation is stale."""
        self._started_generation = -1
        problem = _files_problem(settings)
        self._status = LoadStatus(ModelPhase.MISSING, _name(settings), problem) if problem else LoadStatus(
            ModelPhase.LOADING, _name(settings), "Loading the model…")

    @property
    def status(self) -> LoadStatus:
        with self._changed:
            return self._status

    @property
    def settings(self) -> Settings:
        with self._changed:
            return self._settings

    def _set(self, status: LoadStatus) -> None:
        self._status = status
        self._changed.notify_all()

    def use_settings(self, settings: Settings) -> None:
        """Switch to other settings (a model folder the user picked, a finished download); call
        ``start_loading`` to load that model. A load still running for the old settings loses."""
        with self._changed:
            self._settings = settings
            self._generation += 1
            self._set(LoadStatus(ModelPhase.MISSING, _name(settings)))

    def start_loading(self) -> None:
        """Load the current settings' model in a background thread when its files are on disk (once
        per switch: a second call while that load runs, or after it succeeded, does nothing)."""
        with self._changed:
            settings, generation = self._settings, self._generation
            if self._started_generation == generation and self._status.phase in (ModelPhase.LOADING,
                                                                              ModelPhase.READY):
                return
            problem = _files_problem(settings)
            if problem:
                self._set(LoadStatus(ModelPhase.MISSING, _name(settings), problem))
                return
            self._started_generation = generation
            self._set(LoadStatus(ModelPhase.LOADING, _name(settings), "Loading the model…"))
        threading.Thread(target=self._load, args=(settings, generation), name="docmind-model-load",
                         daemon=True).start()

    def wait_until_settled(self, timeout: float) -> LoadStatus:
        """Block until the model is no longer loading (or ``timeout`` seconds pass); return the status."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._status.phase is ModelPhase.LOADING and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            return self._status

    def _current(self, generation: int) -> bool:
        with self._changed:
            return generation == self._generation

    def _load(self, settings: Settings, generation: int) -> None:
        with self._load_lock:  # one load at a time: a switch waits for the load it overtook
            if not self._current(generation):
                return
            try:
                if self._prepare is not None:
                    self._prepare()
                status = LoadStatus(ModelPhase.READY, _name(settings), _start(settings))
            except Exception as error:  # shown to the user in the status line, never as a trace
                log.exception("loading the model %s failed", _name(settings))
                status = LoadStatus(ModelPhase.FAILED, _name(settings), str(error))
            with self._changed:
                if generation == self._generation:
                    self._set(status)


def _start(settings: Settings) -> str:
    """Load the built-in model, or check that the model server answers; return what the status line says."""
    if settings.llm_base_url:
        from docmind.model.server import probe

        info = probe(settings)
        return f"model server {info.base_url}, model {info.model}"
    from docmind.model.runtime import get_runtime

    plan = get_runtime(settings).loaded.plan
    return f"{plan.device}, {plan.dtype}, quantization {plan.quantization}"
