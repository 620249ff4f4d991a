"""The status line polls fast only while something changes in the background, and redraws only on change."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from docmind.config import load_settings
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.status import BUSY_SECONDS, IDLE_SECONDS, render_status


def _status(context: AppContext):
    with gr.Blocks():
        return render_status(context)


def test_fast_while_the_model_loads_then_idle(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    from docmind.model.runtime import unload

    context = AppContext.create(load_settings(model_path=tiny_model_dir), tmp_path / "uploads")
    status = _status(context)
    text, interval, shown = status.refresh("")
    assert "loading" in text and interval == BUSY_SECONDS
    try:
        context.model.start_loading()
        deadline = time.monotonic() + 120
        while context.model.status.phase is ModelPhase.LOADING and time.monotonic() < deadline:
            time.sleep(0.05)
        text, interval, shown = status.refresh(shown)
        assert "✓ ready" in text and "Documents:** 0" in text and interval == IDLE_SECONDS
        assert status.refresh(shown) == (gr.skip(), IDLE_SECONDS, shown)  # unchanged: nothing is redrawn
    finally:
        unload()


def test_idle_without_a_model(data_dir: Path, tmp_path: Path) -> None:
    context = AppContext.create(load_settings(model_path=tmp_path / "no-model"), tmp_path / "uploads")
    text, interval, _ = _status(context).refresh("")
    assert "model folder not found" in text and interval == IDLE_SECONDS
