"""The status line under the title: the model by its plain name and whether it is ready, and the documents.

Hub ids, the device, dtype and paths are in the Model tab's "Technical details".

It is redrawn right after the page's own events that change it (an upload, a removal, a model
picked), and by a timer that ticks every ``BUSY_SECONDS`` while something changes in the background
(the model loading or downloading, files being ingested) and every ``IDLE_SECONDS`` otherwise, to
notice what other windows or the command line did. A tick redraws the line only when it changed.
The Documents and Model tabs poll on the same policy (``poll_interval``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.events import Dependency

from docmind.model.registry import get_spec, resolve_model
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.model_download import DownloadPhase

BUSY_SECONDS = 0.5
IDLE_SECONDS = 10.0

_MODEL_STATE = {
    ModelPhase.MISSING: "not downloaded yet (answers are search results)",
    ModelPhase.LOADING: "⟳ loading…",
    ModelPhase.READY: "✓ ready",
    ModelPhase.FAILED: "⚠ could not be started (see the Model tab)",
}


def model_display_name(name: str) -> str:
    """A model's name as a person reads it: "Qwen3 1.7B" for a listed hub id, else the folder's name."""
    spec = get_spec(name)
    return spec.name if spec else (Path(name).name or name)


def status_markdown(context: AppContext) -> str:
    """One line of Markdown describing the app's state right now."""
    model = context.model.status
    documents, _ = context.library_size()
    if model.phase is ModelPhase.MISSING and resolve_model(context.settings).local:
        model_text = f"{model_display_name(model.name)} · ⚠ model folder not found (see the Model tab)"
    elif model.phase is ModelPhase.MISSING:
        model_text = _MODEL_STATE[model.phase]
    else:
        model_text = f"{model_display_name(model.name)} · {_MODEL_STATE[model.phase]}"
    return f"**Model:** {model_text} · **Documents:** {documents}"


def changing(context: AppContext) -> bool:
    """Whether the status is about to change by itself (background work is running)."""
    return (
        context.model.status.phase is ModelPhase.LOADING
        or context.download.state.phase is DownloadPhase.RUNNING
        or any(not job.finished for job in context.ingest.jobs())
    )


def poll_interval(context: AppContext) -> float:
    """How soon a page should look again: soon while background work runs, else rarely."""
    return BUSY_SECONDS if changing(context) else IDLE_SECONDS


@dataclass
class StatusLine:
    """The status line of one page, with the timer that keeps it current."""

    context: AppContext
    line: gr.Markdown
    timer: gr.Timer
    shown: gr.State

    @property
    def outputs(self) -> list:
        return [self.line, self.timer, self.shown]

    def refresh(self, shown: str) -> tuple:
        """Outputs for ``[line, timer, shown]``: the line only when it changed, and the next tick's interval."""
        text = status_markdown(self.context)
        return (gr.skip() if text == shown else text), poll_interval(self.context), text

    def follow(self, *events: Dependency) -> None:
        """Redraw the line as soon as each of ``events`` has finished."""
        for event in events:
            event.then(self.refresh, self.shown, self.outputs, api_visibility="private", show_progress="hidden")

    def hurry(self, *triggers: Callable[..., Dependency]) -> None:
        """Tick fast from each of ``triggers`` on (e.g. ``files.upload``): background work is starting."""
        for trigger in triggers:
            trigger(lambda: BUSY_SECONDS, outputs=self.timer, queue=False, api_visibility="private",
                    show_progress="hidden")


def render_status(context: AppContext) -> StatusLine:
    """Add the status line to the page; it is drawn by ``StatusLine.refresh`` on page load and timer ticks."""
    status = StatusLine(context, gr.Markdown(elem_id="docmind-status"), gr.Timer(BUSY_SECONDS), gr.State(""))
    status.timer.tick(status.refresh, status.shown, status.outputs, api_visibility="private", show_progress="hidden")
    return status
