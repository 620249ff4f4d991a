"""What the first-run screens say about a model folder that is not one, and the status line's wording."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from docmind.config import load_settings
from docmind.model.errors import ModelError
from docmind.model.loading import check_model_files
from docmind.model.registry import ModelChoice
from docmind.ui.context import AppContext
from docmind.ui.first_run import folder_problem_text
from docmind.ui.status import render_status


def _problem(path: Path) -> str:
    try:
        check_model_files(ModelChoice(name=str(path), path=path, spec=None, local=True))
    except ModelError as error:
        return folder_problem_text(path, error)
    raise AssertionError(f"{path} passed the model check")


def test_each_wrong_folder_says_which_folder_and_what_it_needs(tmp_path: Path, tiny_model_dir: Path) -> None:
    missing = _problem(tmp_path / "nowhere")
    assert missing.startswith(f"There is no folder at {tmp_path / 'nowhere'}.")
    (tmp_path / "photos").mkdir()
    no_model = _problem(tmp_path / "photos")
    assert no_model.startswith(f"The folder {tmp_path / 'photos'} holds no model: it has no config.json.")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (damaged / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes()[:1000])
    assert _problem(damaged).startswith(f"The model in {damaged} is incomplete or damaged.")
    for text in (missing, no_model, _problem(damaged)):
        assert "config.json" in text and ".safetensors" in text and "Choose another folder" in text
        assert "DOCMIND_MODEL_PATH" not in text and "unset" not in text


def test_the_status_line_names_a_missing_model_folder_in_plain_words(data_dir: Path, tmp_path: Path) -> None:
    context = AppContext.create(load_settings(model_path=tmp_path / "Qwen3-local"), tmp_path / "uploads")
    with gr.Blocks():
        text, _, _ = render_status(context).refresh("")
    assert text == "**Model:** Qwen3-local · ⚠ model folder not found (see the Model tab) · **Documents:** 0"
