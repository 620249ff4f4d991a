"""The status line under the title: model, device, documents and chunks, data dir."""

from __future__ import annotations

import gradio as gr

from docmind.ui.context import AppContext, ModelPhase

REFRESH_SECONDS = 2.0

_MODEL_LABEL = {
    ModelPhase.MISSING: "⬇️ no model yet (search only)",
    ModelPhase.LOADING: "⟳ loading…",
    ModelPhase.READY: "✓ ready",
    ModelPhase.FAILED: "⚠ failed to load",
}


def status_markdown(context: AppContext) -> str:
    """One line of Markdown describing the app's state right now."""
    model = context.model.status
    documents, chunks = context.db.read("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents")[0]
    model_text = f"{_MODEL_LABEL[model.phase]} `{model.name}`"
    if model.phase in (ModelPhase.FAILED, ModelPhase.READY):
        model_text += f" ({model.detail})"
    return (
        f"**Model:** {model_text} · **Device:** {context.device} · "
        f"**Documents:** {documents} ({chunks} chunks) · **Data:** `{context.settings.data_dir}`"
    )


def render_status(context: AppContext) -> gr.Markdown:
    """Add the status line to the page; it refreshes itself every few seconds."""
    line = gr.Markdown(lambda: status_markdown(context), elem_id="docmind-status")
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(lambda: status_markdown(context), outputs=line, api_visibility="private", show_progress="hidden")
    return line
