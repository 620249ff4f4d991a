"""The first hour of a non-technical user, in Debian Chromium against a real app (issue #19).

The tests run in file order on one page: the Model tab with no model and plain advice, a download
that fails for real (the hub is a closed local port), a wrong model folder, uploads that fail, the
library table, removing a document, then a model folder in use. Each step asserts what the user
reads, saves a screenshot under tests/artifacts/first-hour/, and every tab passes an axe-core audit
with no "serious" or "critical" finding.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.a11y import assert_accessible
from tests.ui.conftest import ARTIFACTS, ROOT, Server, WAIT_MS, app_page

SHOTS = ARTIFACTS / "first-hour"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No model on disk, and a model hub that cannot be reached (nothing listens on its port)."""
    return {
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
        "DOCMIND_MAX_FILE_SIZE_MB": "2",
    }


@pytest.fixture(scope="module")
def page(browser, server: Server):
    with app_page(browser, server.url) as page:
        page.get_by_role("tab", name="Chat", exact=True).wait_for()
        yield page


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let Gradio finish drawing
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def _status_line(page) -> str:
    return page.locator("#docmind-status [data-testid=markdown]").inner_text()


def test_model_tab_explains_the_choice_in_plain_words(page) -> None:
    page.locator("#docmind-model-advice").get_by_text("Recommended for this computer").wait_for()
    advice = page.locator("#docmind-model-advice").inner_text()
    assert "answers in about" in advice and "on this computer" in advice
    for jargon in ("bf16", "int8", "fits:", "CPU with enough RAM"):
        assert jargon not in advice
    choices = page.locator("#docmind-model-choice").inner_text()
    assert "(recommended)" in choices and "GB download" in choices and "of memory" in choices
    assert "an answer takes about" in choices and "Qwen/" not in choices
    page.locator("#docmind-status [data-testid=markdown]").get_by_text("not downloaded yet").wait_for()
    status = _status_line(page)
    assert "Qwen/" not in status and "chunk" not in status and "/" not in status
    assert "Switch" not in page.locator("#docmind-model-status").inner_text()
    assert not page.locator("#docmind-model-switch").is_visible()  # no model in use: nothing to switch from
    _shot(page, "01-model-tab")
    assert_accessible(page, "the Model tab")


def test_a_failed_download_says_what_happened_in_plain_words(page, server: Server) -> None:
    page.locator("#docmind-download").click()
    progress = page.locator("#docmind-download-progress")
    progress.get_by_text("DocMind could not reach the internet to download the model.").wait_for()
    assert "Check your connection, or use a model folder you already have" in progress.inner_text()
    assert progress.locator("[role=alert]").count() == 1  # styled and announced as an error
    assert progress.locator("progress").count() == 0  # nothing was downloaded: no bar
    details = progress.get_by_text("Connection refused")
    assert not details.is_visible() and "HF_ENDPOINT" not in progress.inner_text()
    button = page.locator("#docmind-download")
    assert button.inner_text().strip() == "Try again"  # nothing to resume
    _shot(page, "02-download-failed")
    progress.get_by_text("Details").click()
    details.wait_for(state="visible")
    assert "Connection refused" in server.log()  # the technical detail is in the log too
    _shot(page, "03-download-failed-details")
    assert_accessible(page, "the Model tab after a failed download")


def test_a_wrong_model_folder_says_what_a_model_folder_needs(page, tmp_path: Path) -> None:
    page.get_by_text("Use a model folder I already have").click()
    folder = tmp_path / "My Documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    page.locator("#docmind-model-folder textarea").fill(str(folder))
    page.get_by_role("button", name="Use this folder").click()
    result = page.locator("#docmind-model-folder-result")
    result.get_by_text(f"The folder {folder} holds no model").wait_for()
    text = result.inner_text()
    assert "config.json" in text and ".safetensors" in text and "Choose another folder" in text
    assert "DOCMIND_MODEL_PATH" not in text and "unset it" not in text
    assert page.locator("#docmind-model-folder textarea").is_editable()  # another folder can be typed at once
    page.locator("#docmind-model-folder textarea").fill(str(tmp_path / "missing"))
    page.get_by_role("button", name="Use this folder").click()
    result.get_by_text(f"There is no folder at {tmp_path / 'missing'}.").wait_for()
    _shot(page, "04-wrong-model-folder")


def test_documents_tab_drop_area_and_hints(page) -> None:
    page.get_by_role("tab", name="Documents").click()
    upload = page.locator("#docmind-upload")
    upload.wait_for()
    assert upload.inner_text().lower().count("drop") == 1  # the instruction is said once
    hint = page.locator("#docmind-remove-hint")
    assert "Click a document in the list above" in hint.inner_text()
    assert page.get_by_role("button", name="Remove selected document…").is_disabled()
    headers = page.locator("#docmind-library").inner_text()
    assert "Passages" in headers and "Where it came from" in headers and "Chunks" not in headers
    _shot(page, "05-documents-empty")
    assert_accessible(page, "the Documents tab")


def test_an_upload_where_every_file_failed_is_a_warning(page, tmp_path: Path) -> None:
    files = []
    for name in ("report.pdf", "slides.pptx", "letter.docx"):
        (tmp_path / name).write_bytes(b"not really a " + name.encode() + bytes(range(256)) * 8)
        files.append(str(tmp_path / name))
    page.locator("#docmind-upload input[type=file]").set_input_files(files)
    summary = page.locator("#docmind-ingest-summary")
    summary.get_by_text("None of the 3 files could be added").wait_for()
    text = summary.inner_text()
    assert "✓" not in text and "⚠" in text and "processed" not in text
    assert summary.locator(".docmind-warning[role=alert]").count() == 1
    _shot(page, "06-upload-all-failed")


def test_the_drop_area_shows_every_file_it_is_given(page, tmp_path: Path) -> None:
    """Three files dropped at once are all visible in the drop area (none cut off) while they upload."""
    names = [f"chapter-{n}.txt" for n in (1, 2, 3)]
    for name in names:
        (tmp_path / name).write_text(f"{name} is about the Zorblax warranty.\n")
    page.locator("#docmind-upload input[type=file]").set_input_files([str(tmp_path / n) for n in names])
    page.wait_for_function("() => document.querySelectorAll('#docmind-upload td.filename').length == 3")
    clipped = page.evaluate("""() => {
        const area = document.querySelector('#docmind-upload');
        return [...area.querySelectorAll('td.filename')].filter(cell => {
            const box = cell.getBoundingClientRect();
            for (let node = cell.parentElement; node && node !== area.parentElement; node = node.parentElement) {
                const outer = node.getBoundingClientRect();
                if (getComputedStyle(node).overflowY != 'visible' && box.bottom > outer.bottom + 1) return true;
            }
            return false;
        }).map(cell => cell.innerText);
    }""")
    shown = page.locator("#docmind-upload .file-preview").inner_text()
    assert all(name.removesuffix(".txt") in shown for name in names), shown
    _shot(page, "07-drop-area-three-files")
    assert clipped == [], f"cut off in the drop area: {clipped}"
    page.locator("#docmind-ingest-summary").get_by_text("All 3 files added.").wait_for()


def test_the_library_shows_where_each_file_came_from(page, server: Server, tmp_path: Path) -> None:
    own = tmp_path / "my-folder"
    own.mkdir()
    (own / "handbook.md").write_text("# Handbook\n\nThe Zorblax handbook explains the service plan.\n")
    env = {**os.environ, "DOCMIND_DATA_DIR": str(server.data_dir)}
    subprocess.run([sys.executable, "-m", "docmind", "ingest", str(own)], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.get_by_role("tab", name="Documents").click()  # the tab redraws the library when it is selected
    library = page.locator("#docmind-library")
    page.wait_for_function("(path) => document.querySelector('#docmind-library').innerText.includes(path)",
                           arg=str((own / "handbook.md").resolve()))
    text = library.inner_text()
    assert "chapter-1.txt" in text and "uploaded in this app" in text
    assert "/library/" not in text  # never DocMind's internal copy
    _shot(page, "08-library")


def test_removing_needs_a_row_and_says_which(page) -> None:
    page.locator("#docmind-library").get_by_text("chapter-2.txt").first.click()
    page.locator("#docmind-remove-hint").get_by_text("Selected: chapter-2.txt").wait_for()
    assert page.get_by_role("button", name="Remove selected document…").is_enabled()
    page.get_by_role("button", name="Remove selected document…").click()
    page.get_by_role("button", name="Yes, remove it").click()
    page.wait_for_function("() => !document.querySelector('#docmind-library').innerText.includes('chapter-2.txt')")
    assert "Click a document in the list above" in page.locator("#docmind-remove-hint").inner_text()
    _shot(page, "09-removed")


# what Gradio's status tracker says to screen readers when an event finishes (its hidden live region)
_RECORD_ANNOUNCEMENTS = """() => {
    window.__heard = [];
    new MutationObserver(() => {
        for (const region of document.querySelectorAll('.sr-only[role=status][aria-live]')) {
            const text = region.textContent.trim();
            if (text) window.__heard.push(text);
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_chat_and_chats_tabs_pass_the_audit(page) -> None:
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.evaluate(_RECORD_ANNOUNCEMENTS)
    page.locator("#docmind-question textarea").fill("What does the warranty cover?")
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text("What does the warranty cover?").first.wait_for()
    page.locator("#docmind-send").wait_for(state="visible")
    # a finished event is announced up to 5 s after the one before (Gradio throttles its announcements)
    page.wait_for_function("() => window.__heard.some(text => text == 'Done' || text.includes('common.'))",
                           timeout=30_000)
    heard = page.evaluate("() => window.__heard")
    assert "Done" in heard and not [text for text in heard if "common." in text], (
        f"a screen reader hears an untranslated label: {heard}")
    _shot(page, "10-chat")
    assert_accessible(page, "the Chat tab")
    page.get_by_role("tab", name="Chats").click()
    page.wait_for_timeout(500)
    _shot(page, "11-chats")
    assert_accessible(page, "the Chats tab")


def test_with_a_model_in_use_the_model_tab_shows_it_and_how_to_switch(page, tiny_model_dir: Path) -> None:
    page.get_by_role("tab", name="Model").click()
    page.locator("#docmind-model-folder textarea").fill(str(tiny_model_dir))
    page.get_by_role("button", name="Use this folder").click()
    page.locator("#docmind-model-status").get_by_text(f"In use: {tiny_model_dir.name}").wait_for()
    page.locator("#docmind-status").get_by_text("ready").wait_for(timeout=WAIT_MS * 2)
    page.locator("#docmind-download-area").wait_for(state="hidden")
    assert "Use another model" in page.locator("#docmind-model-switch-hint").inner_text()
    status = _status_line(page)
    assert f"{tiny_model_dir.name} · ✓ ready" in status and "bfloat16" not in status and "cpu" not in status
    _shot(page, "12-model-in-use")
    assert_accessible(page, "the Model tab with a model in use")
    page.get_by_role("button", name="Use another model…").click()
    page.locator("#docmind-download-area").wait_for(state="visible")
    assert page.locator("#docmind-download").is_visible()  # a model to download, with its button
    page.get_by_text("Technical details").click()
    assert str(tiny_model_dir) in page.locator("#docmind-model-details").inner_text()
    _shot(page, "13-model-switch")
