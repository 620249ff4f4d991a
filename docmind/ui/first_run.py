"""The Model tab, shown first while no model is on disk.

It says which model is in use (or that none is yet) and how it runs on this computer (``model_plan``),
and offers the download only when it applies: the recommended model and why in plain words (download
size and time, memory, how long an answer takes on this computer), the others, free disk, a download
with progress (bytes, speed, time left), pause and resume, and "use a model folder I already have" for
machines without internet. Hub ids, paths and the load plan sit in a "Technical details" block.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from docmind.config import load_settings, save_settings
from docmind.model import MODELS, ModelError, detect_hardware, model_fit, recommend
from docmind.model.download import free_disk_bytes, human_bytes
from docmind.model.errors import ModelNotDownloadedError
from docmind.model.loading import check_model_files
from docmind.model.registry import ModelChoice, get_spec, models_dir, resolve_model
from docmind.model.speed import DOWNLOAD_MBIT_PER_S, describe_seconds, download_seconds
from docmind.ui import model_server
from docmind.ui.auth import only_on_the_server
from docmind.ui.model_plan import plan_markdown
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.feedback import shows_errors
from docmind.ui.model_download import DownloadPhase, DownloadState
from docmind.ui.status import BUSY_SECONDS, StatusLine, model_display_name, poll_interval

MODEL_CHOICE_ONLY = ("choosing or downloading the model (every user's chats use it)",
                     "`docmind model download NAME` or model_path in config.toml")
ERROR_STYLE = "border:1px solid #b91c1c;background:#fef2f2;color:#7f1d1d;border-radius:6px;padding:0.2em 0.8em"
FOLDER_NEEDS = ("A model folder holds a Hugging Face model as downloaded: a `config.json` file, the tokenizer "
                "(`tokenizer.json`) and the weights (one or more `.safetensors` files).")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "estimating time left"
    if seconds < 90:
        return f"{seconds:.0f} s left"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


def _details(text: str) -> str:
    """A closed "Details" toggle holding technical text."""
    return f"<details><summary>Details</summary><code>{html.escape(text)}</code></details>" if text else ""


def problem_html(message: str, detail: str = "") -> str:
    """A problem in plain words, styled as an error, with the technical detail behind a toggle."""
    return (f'<div class="docmind-error" role="alert" style="{ERROR_STYLE}"><p><b>⚠ {html.escape(message)}</b></p>'
            f"{_details(detail)}</div>")


def progress_html(state: DownloadState) -> str:
    """The progress bar with bytes, speed and time left; a failure in plain words, styled as an error."""
    if state.phase is DownloadPhase.IDLE:
        return ""
    if state.phase is DownloadPhase.FAILED and not state.bytes_done:
        return f'<div id="docmind-download-progress">{problem_html(state.message, state.detail)}</div>'
    percent = 100.0 * state.bytes_done / state.bytes_total if state.bytes_total else 0.0
    numbers = f"{human_bytes(state.bytes_done)} of {human_bytes(state.bytes_total)}" if state.bytes_total else ""
    if state.phase is DownloadPhase.RUNNING and state.bytes_total:
        numbers += f" · {human_bytes(state.speed)}/s · {human_duration(state.eta_seconds)}"
    bar = (f'<progress value="{percent:.1f}" max="100" aria-label="Download progress" '
           f'style="width:100%;height:1.2em"></progress><div><b>{percent:.0f}%</b> {html.escape(numbers)}</div>'
           if state.bytes_total else "")
    message = (problem_html(state.message, state.detail) if state.phase is DownloadPhase.FAILED
               else f"<div>{html.escape(state.message)}</div>")
    return f'<div id="docmind-download-progress">{bar}{message}</div>'


def folder_problem_text(path: Path, error: ModelError) -> str:
    """Why ``path`` is not a usable model folder, in plain words, with what it must contain."""
    if not path.is_dir():
        found = f"There is no folder at {path}."
    elif isinstance(error, ModelNotDownloadedError):
        found = f"The folder {path} holds no model: it has no config.json."
    else:
        found = f"The model in {path} is incomplete or damaged."
    return f"{found} {FOLDER_NEEDS.replace('`', '')} Choose another folder, or download a model."


def render(context: AppContext, tabs: gr.Tabs, status: StatusLine) -> gr.Tab:
    """Build the Model tab inside ``tabs``; it switches to the Chat tab when a download has loaded.

    ``status`` is redrawn when a download starts or a model folder is picked."""
    hardware = detect_hardware()
    recommendation = recommend(hardware)
    recommended = recommendation.spec.hub_id

    def model_label(spec) -> str:
        fit = model_fit(spec, hardware)
        answer = (f"an answer takes {describe_seconds(fit.answer_seconds)} here" if fit.fits
                  else "too big for this computer's free memory")
        return (f"{spec.name}{' (recommended)' if spec.hub_id == recommended else ''} · "
                f"{human_bytes(spec.download_bytes)} download, "
                f"{describe_seconds(download_seconds(spec.download_bytes))} · "
                f"needs {human_bytes(fit.memory_bytes)} of memory · {answer}")

    def in_use() -> bool:
        return context.model.status.phase in (ModelPhase.READY, ModelPhase.LOADING)

    def status_text() -> str:
        model = context.model.status
        choice = resolve_model(context.settings)
        name = model_display_name(model.name)
        if model.phase is ModelPhase.READY:
            return f"✓ **In use: {name}.** It is ready: ask your questions in the Chat tab."
        if model.phase is ModelPhase.LOADING:
            return f"⟳ **In use: {name}.** It is loading; this takes a minute or two."
        if model.phase is ModelPhase.FAILED:
            return f"⚠ **{name} could not be started.** See the technical details below, or choose another model."
        if choice.local:
            return f"⚠ **No model is in use.** DocMind was set to use a model folder, but: {model_problem()}"
        return ("**No language model is on this computer yet.** Until you download one, DocMind works as a search "
                "engine: your questions get the best passages from your documents, with their sources.")

    def model_problem() -> str:
        choice = resolve_model(context.settings)
        try:
            check_model_files(choice)
        except ModelError as error:
            return folder_problem_text(choice.path, error)
        return ""

    def switch_hint() -> str:
        if not in_use():
            return ""
        return ("To switch to another model, click **Use another model…**, or point DocMind at a model folder "
                "you already have (below).")

    def disk_text() -> str:
        return (f"Free disk space on this computer: **{human_bytes(free_disk_bytes(models_dir(context.settings)))}**. "
                f"Download times are for a {DOWNLOAD_MBIT_PER_S:.0f} Mbit/s internet connection.")

    def details_text() -> str:
        model = context.model.status
        choice = resolve_model(context.settings)
        lines = [f"- Model: `{model.name}`", f"- Model files: `{choice.path}`",
                 f"- This computer: {hardware.summary}",
                 f"- Recommended plan: {recommendation.plan.device}, {recommendation.plan.dtype}, "
                 f"quantization {recommendation.plan.quantization} ({recommendation.plan.reason})",
                 f"- Models are kept in `{models_dir(context.settings)}`",
                 f"- Data folder: `{context.settings.data_dir}`",
                 f"- Download times assume a {DOWNLOAD_MBIT_PER_S:.0f} Mbit/s connection; answer times are "
                 "estimates from the model's size and this computer's processor."]
        if model.phase in (ModelPhase.READY, ModelPhase.FAILED) and model.detail:
            lines.insert(2, f"- {'Running on' if model.phase is ModelPhase.READY else 'Error'}: {model.detail}")
        return "\n".join(lines)

    with gr.Tab("Model", id="model") as tab:
        gr.Markdown("### The language model\nDocMind writes answers with a language model that runs on this "
                    "computer. It is downloaded once; after that DocMind works fully offline.")
        model_status = gr.Markdown(status_text, elem_id="docmind-model-status")
        plan = gr.Markdown(lambda: plan_markdown(context, hardware), elem_id="docmind-model-plan")
        hint = gr.Markdown(switch_hint, elem_id="docmind-model-switch-hint")
        switch = gr.Button("Use another model…", visible=in_use(), elem_id="docmind-model-switch")
        with gr.Column(visible=not in_use(), elem_id="docmind-download-area") as download_area:
            gr.Markdown(f"**Recommended for this computer:** {recommendation.reason}.",
                        elem_id="docmind-model-advice")
            choice = gr.Radio(
                choices=[(model_label(spec), spec.hub_id) for spec in MODELS],
                value=context.settings.model if in_use() and get_spec(context.settings.model) else recommended,
                label="Model to download",
                elem_id="docmind-model-choice",
            )
            disk = gr.Markdown(disk_text)
            with gr.Row():
                download = gr.Button(context.download.state.action, variant="primary", elem_id="docmind-download")
                pause = gr.Button("Pause", visible=False, elem_id="docmind-pause")
            progress = gr.HTML(lambda: progress_html(context.download.state))
        with gr.Accordion("Use a model folder I already have (no internet needed)",
                          open=resolve_model(context.settings).local and not in_use()):
            gr.Markdown(f"Point DocMind at a folder copied from another computer, for example. {FOLDER_NEEDS}")
            with gr.Row():
                folder = gr.Textbox(placeholder="/path/to/Qwen3-4B-Thinking-2507", label="Model folder",
                                    scale=5, elem_id="docmind-model-folder")
                use_folder = gr.Button("Use this folder", scale=1, elem_id="docmind-use-folder")
            folder_result = gr.HTML(elem_id="docmind-model-folder-result")
        model_server.render(context, status)
        with gr.Accordion("Technical details", open=False):
            details = gr.Markdown(details_text, elem_id="docmind-model-details")
        announced = gr.State(False)
        switching = gr.State(False)
        timer = gr.Timer(BUSY_SECONDS)  # then every few seconds unless a download or a load is running

    def buttons(state: DownloadState) -> tuple[dict, dict]:
        running = state.phase is DownloadPhase.RUNNING
        return gr.update(visible=not running, value=state.action), gr.update(visible=running)

    @shows_errors
    def start(hub_id: str, request: gr.Request) -> tuple:
        only_on_the_server(request, *MODEL_CHOICE_ONLY)
        if not hub_id:
            raise gr.Error("Choose a model first.")
        context.download.start(hub_id)
        state = context.download.state
        return (progress_html(state), *buttons(state), BUSY_SECONDS)

    status.follow(download.click(start, choice, [progress, download, pause, timer], api_visibility="private"))

    def do_pause(request: gr.Request) -> tuple:
        only_on_the_server(request, *MODEL_CHOICE_ONLY)
        context.download.pause()
        return gr.update(visible=False), gr.update(value="Pausing…")

    pause.click(do_pause, outputs=[pause, download], api_visibility="private")
    switch.click(lambda: (gr.update(visible=True), gr.update(visible=False), True),
                 outputs=[download_area, switch, switching], api_visibility="private")

    @shows_errors
    def use(path_text: str, request: gr.Request) -> tuple:
        only_on_the_server(request, *MODEL_CHOICE_ONLY)
        if not path_text.strip():
            raise gr.Error("Type the folder's path first.")
        path = Path(path_text.strip()).expanduser()
        try:
            check_model_files(ModelChoice(name=str(path), path=path, spec=None, local=True))
        except ModelError as error:
            return problem_html(folder_problem_text(path, error), str(error)), status_text(), gr.skip()
        save_settings(context.settings.data_dir, model_path=str(path.resolve()))
        context.switch_settings(load_settings(data_dir=context.settings.data_dir))
        return (f"<p>✓ Using the model in <code>{html.escape(str(path))}</code>. It is loading now; the Chat tab "
                "answers with it when it is ready.</p>", status_text(), BUSY_SECONDS)

    status.follow(use_folder.click(use, folder, [folder_result, model_status, timer], api_visibility="private"))

    def tick(announced: bool, switching: bool) -> tuple:
        state = context.download.state
        loaded = context.model.status.phase is ModelPhase.READY and state.phase is DownloadPhase.DONE
        go_chat = gr.Tabs(selected="chat") if loaded and not announced else gr.skip()
        switching = switching and not (loaded and not announced)  # the new model is in use: switching is over
        show_area = not in_use() or switching or state.phase is DownloadPhase.RUNNING
        return (progress_html(state), status_text(), plan_markdown(context, hardware), switch_hint(),
                gr.update(visible=not show_area), gr.update(visible=show_area), disk_text(), details_text(), *buttons(state), go_chat,
                announced or loaded, switching, poll_interval(context))

    timer.tick(tick, [announced, switching],
               [progress, model_status, plan, hint, switch, download_area, disk, details, download, pause, tabs,
                announced, switching, timer],
               api_visibility="private", show_progress="hidden")
    return tab
