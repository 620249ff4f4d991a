"""The Model tab, shown first while no model is on disk: the recommended model and why, the others with
their sizes, free disk, a download with progress (bytes, speed, time left), pause and resume, and
"use a model folder I already have" for machines without internet.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from docmind.config import load_settings, save_settings
from docmind.model import MODELS, ModelError, detect_hardware, recommend
from docmind.model.download import free_disk_bytes, human_bytes
from docmind.model.loading import check_model_files
from docmind.model.registry import ModelChoice, models_dir, resolve_model
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.feedback import shows_errors
from docmind.ui.model_download import DownloadPhase, DownloadState
from docmind.ui.status import BUSY_SECONDS, StatusLine, poll_interval


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating time left"
    if seconds < 90:
        return f"{seconds:.0f} s left"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


def progress_html(state: DownloadState) -> str:
    """The progress bar with bytes, speed and time left."""
    if state.phase is DownloadPhase.IDLE:
        return ""
    total = max(state.bytes_total, 1)
    percent = 100.0 * state.bytes_done / total if state.bytes_total else 0.0
    numbers = f"{human_bytes(state.bytes_done)} of {human_bytes(state.bytes_total)}" if state.bytes_total else ""
    if state.phase is DownloadPhase.RUNNING and state.bytes_total:
        numbers += f" · {human_bytes(state.speed)}/s · {human_duration(state.eta_seconds)}"
    return (
        '<div id="docmind-download-progress">'
        f'<progress value="{percent:.1f}" max="100" style="width:100%;height:1.2em"></progress>'
        f"<div><b>{percent:.0f}%</b> {html.escape(numbers)}</div>"
        f"<div>{html.escape(state.message)}</div></div>"
    )


def _model_label(spec, recommended: str) -> str:
    label = f"{spec.label} · {human_bytes(spec.download_bytes)} download · needs about {human_bytes(spec.ram_bytes)} RAM"
    return label + (" · recommended" if spec.hub_id == recommended else "")


def render(context: AppContext, tabs: gr.Tabs, status: StatusLine) -> gr.Tab:
    """Build the Model tab inside ``tabs``; it switches to the Chat tab when a download has loaded.

    ``status`` is redrawn when a download starts or a model folder is picked."""
    hardware = detect_hardware()
    recommendation = recommend(hardware)
    recommended = recommendation.spec.hub_id

    def status_text() -> str:
        model = context.model.status
        choice = resolve_model(context.settings)
        if model.phase is ModelPhase.READY:
            return f"✓ **{choice.name}** is loaded and answering questions."
        if model.phase is ModelPhase.LOADING:
            return f"⟳ **{choice.name}** is on disk and loading…"
        if model.phase is ModelPhase.FAILED:
            return f"⚠ **{choice.name}** could not be loaded: {model.detail}"
        return (
            "No language model is on this computer yet. Until you download one, DocMind works as a search "
            "engine: your questions get the best passages from your documents, with their sources."
        )

    def disk_text() -> str:
        folder = models_dir(context.settings)
        return f"Free disk space: **{human_bytes(free_disk_bytes(folder))}** (models are kept in `{folder}`)."

    with gr.Tab("Model", id="model") as tab:
        gr.Markdown("### The language model\nDocMind writes answers with a language model that runs on this "
                    "computer. It is downloaded once; after that DocMind works fully offline.")
        model_status = gr.Markdown(status_text, elem_id="docmind-model-status")
        gr.Markdown(f"**Recommended for this computer:** {recommendation.plan.reason}. Detected: {hardware.summary}.")
        choice = gr.Radio(
            choices=[(_model_label(spec, recommended), spec.hub_id) for spec in MODELS],
            value=recommended if context.settings.model not in [s.hub_id for s in MODELS] else context.settings.model,
            label="Model to download",
            elem_id="docmind-model-choice",
        )
        disk = gr.Markdown(disk_text)
        with gr.Row():
            download = gr.Button("Download", variant="primary", elem_id="docmind-download")
            pause = gr.Button("Pause", visible=False, elem_id="docmind-pause")
        progress = gr.HTML(lambda: progress_html(context.download.state))
        with gr.Accordion("Use a model folder I already have (no internet needed)", open=False):
            gr.Markdown("Point DocMind at a folder holding a Hugging Face model (config.json, tokenizer and "
                        ".safetensors files), for example one copied from another computer.")
            with gr.Row():
                folder = gr.Textbox(placeholder="/path/to/Qwen3-4B-Thinking-2507", show_label=False, scale=5,
                                    elem_id="docmind-model-folder")
                use_folder = gr.Button("Use this folder", scale=1)
            folder_result = gr.Markdown()
        announced = gr.State(False)
        timer = gr.Timer(BUSY_SECONDS)  # then every few seconds unless a download or a load is running

    def buttons(state: DownloadState) -> tuple[dict, dict]:
        running = state.phase is DownloadPhase.RUNNING
        paused = state.phase in (DownloadPhase.PAUSED, DownloadPhase.FAILED)
        label = "Resume" if paused else "Download"
        ready = context.model.status.phase in (ModelPhase.READY, ModelPhase.LOADING)
        return (gr.update(visible=not running and not ready, value=label), gr.update(visible=running))

    @shows_errors
    def start(hub_id: str) -> tuple:
        if not hub_id:
            raise gr.Error("Choose a model first.")
        context.download.start(hub_id)
        state = context.download.state
        return (progress_html(state), *buttons(state), BUSY_SECONDS)

    status.follow(download.click(start, choice, [progress, download, pause, timer], api_visibility="private"))

    def do_pause() -> tuple:
        context.download.pause()
        return gr.update(visible=False), gr.update(value="Pausing…")

    pause.click(do_pause, outputs=[pause, download], api_visibility="private")

    @shows_errors
    def use(path_text: str) -> tuple:
        path = Path(path_text.strip()).expanduser()
        if not path_text.strip():
            raise gr.Error("Type the folder's path first.")
        try:
            check_model_files(ModelChoice(name=str(path), path=path, spec=None, local=True))
        except ModelError as error:
            return f"⚠ {error}", status_text(), gr.skip()
        save_settings(model_path=str(path.resolve()))
        context.switch_settings(load_settings())
        return (f"✓ Using the model in `{path}`. It is loading now; the Chat tab answers with it when ready.",
                status_text(), BUSY_SECONDS)

    status.follow(use_folder.click(use, folder, [folder_result, model_status, timer], api_visibility="private"))

    def tick(announced: bool) -> tuple:
        state = context.download.state
        ready = context.model.status.phase is ModelPhase.READY
        switch = gr.Tabs(selected="chat") if ready and state.phase is DownloadPhase.DONE and not announced else gr.skip()
        return (progress_html(state), status_text(), disk_text(), *buttons(state), switch,
                announced or (ready and state.phase is DownloadPhase.DONE), poll_interval(context))

    timer.tick(tick, announced, [progress, model_status, disk, download, pause, tabs, announced, timer],
               api_visibility="private", show_progress="hidden")
    return tab
