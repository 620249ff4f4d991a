"""A first-time user's journey in Debian Chromium, against a real app with no model yet.

The tests run in file order on one page: first-run screen, upload, a search answer with a citation,
the model download (from a local fake hub serving the tiny Qwen3), a streamed answer, reload and
export, two browser tabs chatting at once. Every request the pages make is recorded and must go to
127.0.0.1. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.model.fake_hub import FakeHub
from tests.ui.conftest import Server

HUB_MODEL = "Qwen/Qwen3-0.6B"
QUESTION = "What does the Zorblax warranty cover?"
WAIT_MS = 60_000


class _Throttled:
    """A socket writer that sends 4 KB every 50 ms, so a download lasts long enough to pause it."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def write(self, data: bytes) -> int:
        for start in range(0, len(data), 4096):
            self.raw.write(data[start:start + 4096])
            self.raw.flush()
            time.sleep(0.05)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


class SlowHub(FakeHub):
    def _handler(self):
        base = super()._handler()

        class Slow(base):
            def setup(self) -> None:
                super().setup()
                self.wfile = _Throttled(self.wfile)

        return Slow


@pytest.fixture(scope="module")
def fake_hub(tiny_model_dir: Path) -> Iterator[FakeHub]:
    with SlowHub(HUB_MODEL, tiny_model_dir) as hub:
        yield hub


@pytest.fixture(scope="module")
def server_env(fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No model on disk; downloads come from the fake hub."""
    return {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path_factory.mktemp("hf-home")),
        "DOCMIND_MAX_FILE_SIZE_MB": "2",
    }


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def context(browser, requests_seen: list[str]):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.on("request", lambda request: requests_seen.append(request.url))
    yield context
    context.close()


@pytest.fixture(scope="module")
def page(context, server: Server):
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(server.url)
    page.get_by_role("tab", name="Chat", exact=True).wait_for()
    return page


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    paths = {
        "warranty.txt": folder / "warranty.txt",
        "broken.pdf": folder / "broken.pdf",
        "huge.txt": folder / "huge.txt",
    }
    paths["warranty.txt"].write_text("The Zorblax warranty covers repairs for 3 years.\n\nReturns within 30 days.\n")
    paths["broken.pdf"].write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    paths["huge.txt"].write_bytes(b"big file " * 350_000)  # over the server's 2 MB limit
    return paths


def _selected_tab(page) -> str:
    return page.locator("[role=tab][aria-selected=true]").inner_text().strip()


_RECORD_RENDERS = """() => {
    const chat = document.querySelector('#docmind-chatbot');
    window.__renders = [];
    new MutationObserver(() => window.__renders.push(chat.innerText)).observe(
        chat, {subtree: true, childList: true, characterData: true});
}"""


def _ask(page, question: str) -> list[str]:
    """Ask in the Chat tab; return every text the chat showed while the answer came in."""
    page.evaluate(_RECORD_RENDERS)
    page.locator("#docmind-question textarea").fill(question)
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text(question).last.wait_for()  # Send turns into Stop with it
    page.locator("#docmind-send").wait_for(state="visible")
    return [*page.evaluate("() => window.__renders"), page.locator("#docmind-chatbot").inner_text()]


def test_first_run_opens_on_the_model_screen(page, artifacts: Path) -> None:
    page.get_by_text("Recommended for this computer").wait_for()
    assert _selected_tab(page) == "Model"
    for label in ("Qwen3 4B Thinking", "Qwen3 1.7B", "Qwen3 0.6B"):
        assert page.get_by_text(label).first.is_visible()
    assert page.get_by_text("GB download").first.is_visible()
    assert page.get_by_text("Free disk space").is_visible()
    # the line's own text: Gradio's (invisible) progress tracker beside it may read "0.4s" mid-refresh
    page.locator("#docmind-status [data-testid=markdown]").get_by_text("not downloaded yet").wait_for(timeout=3000)
    page.screenshot(path=artifacts / "01-first-run.png", full_page=True)


def test_upload_shows_each_file_status(page, documents: dict[str, Path], artifacts: Path) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#docmind-upload input[type=file]").set_input_files(
        [str(documents["warranty.txt"]), str(documents["broken.pdf"])]
    )
    summary = page.locator("#docmind-ingest-summary")
    summary.get_by_text("1 file of 2 added, 1 failed").wait_for()
    assert "Your library: 1 document, 1 passage." in summary.inner_text()
    jobs = page.locator("#docmind-ingest-jobs").inner_text()
    assert "added: 1 passage" in jobs and "not a readable PDF" in jobs
    assert "warranty.txt" in page.locator("#docmind-library").inner_text()
    page.locator("#docmind-status").get_by_text("Documents: 1").wait_for(timeout=3000)  # not the 10 s tick


def test_a_whole_folder_can_be_added(page, tmp_path: Path, artifacts: Path) -> None:
    folder = tmp_path / "handbook"
    (folder / "chapter").mkdir(parents=True)
    (folder / "intro.md").write_text("# Intro\n\nThe handbook explains the Zorblax service plan.\n")
    (folder / "chapter" / "service.txt").write_text("Service visits happen twice a year.\n")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Add a whole folder…").click()
    chooser.value.set_files(str(folder))
    summary = page.locator("#docmind-ingest-summary")
    summary.get_by_text("Your library: 3 documents").wait_for()
    assert "All 2 files added." in summary.inner_text()  # this upload, not all since start
    assert "failed" not in summary.inner_text()
    library = page.locator("#docmind-library").inner_text()
    assert "intro.md" in library and "service.txt" in library
    page.screenshot(path=artifacts / "02-documents.png", full_page=True)


def test_upload_over_the_size_limit_says_so(page, documents: dict[str, Path], artifacts: Path) -> None:
    page.locator("#docmind-upload input[type=file]").set_input_files([str(documents["huge.txt"])])
    page.get_by_text("exceed the maximum allowed size of 2.0 Mb").first.wait_for()
    page.screenshot(path=artifacts / "03-too-big.png", full_page=True)
    assert "huge.txt" not in page.locator("#docmind-library").inner_text()


def test_without_a_model_the_answer_is_a_labelled_search_result_with_citations(page, artifacts: Path) -> None:
    page.get_by_role("tab", name="Chat", exact=True).click()
    seen = _ask(page, QUESTION)
    assert "Search result" in seen[-1]
    page.locator("#docmind-chatbot summary").filter(has_text=re.compile(r"^Sources \(\d\): .*warranty\.txt")).click()
    page.locator("#docmind-chatbot").get_by_text(re.compile(r"library/\w+/warranty\.txt")).wait_for(state="visible")  # the passage
    page.wait_for_timeout(300)  # let the block finish opening before the screenshot
    page.screenshot(path=artifacts / "04-search-result-citation.png", full_page=True)


def test_download_pause_and_resume_then_chat_opens(page, fake_hub: FakeHub, artifacts: Path) -> None:
    page.get_by_role("tab", name="Model").click()
    page.locator("#docmind-model-choice").get_by_text("Qwen3 0.6B ·").click()
    page.locator("#docmind-download").click()
    progress = page.locator("#docmind-download-progress")
    progress.get_by_text("Downloading model.safetensors").wait_for()  # part of the weights is on disk
    assert "left" in progress.inner_text()  # bytes, speed and time left
    page.screenshot(path=artifacts / "05a-downloading.png", full_page=True)
    page.locator("#docmind-pause").click()
    progress.get_by_text("Paused").wait_for()
    assert page.locator("#docmind-download").inner_text().strip() == "Resume download"
    page.locator("#docmind-download").click()
    page.wait_for_function("() => document.querySelector('[role=tab][aria-selected=true]').innerText.trim() == 'Chat'",
                           timeout=WAIT_MS * 2)
    weights = [byte_range for method, path, byte_range in fake_hub.requests
               if method == "GET" and path.endswith("/model.safetensors")]
    assert len(weights) == 2 and weights[0] == "bytes=0-" and weights[1] != "bytes=0-", (
        f"the weights did not resume where the pause left them: {weights}")
    page.locator("#docmind-status").get_by_text("ready").wait_for()
    page.get_by_role("tab", name="Model").click()
    page.locator("#docmind-model-status").get_by_text("In use: Qwen3 0.6B").wait_for()
    page.screenshot(path=artifacts / "05-downloaded.png", full_page=True)
    page.get_by_role("tab", name="Chat", exact=True).click()


def test_the_model_streams_its_answer(page, artifacts: Path) -> None:
    page.get_by_role("button", name="New chat").click()
    seen = _ask(page, "Summarise the warranty terms")
    answers = {text.split("Summarise the warranty terms", 1)[-1].strip() for text in seen}
    assert len(answers - {""}) >= 3, f"the answer did not stream: {sorted(map(len, answers))}"
    assert "Summarise the warranty terms" in seen[-1]
    assert "Traceback" not in seen[-1] and "Something went wrong" not in seen[-1]
    page.screenshot(path=artifacts / "06-streamed-answer.png", full_page=True)


def _stored_turns(server: Server, question: str) -> list[tuple]:
    """``(role, status, created_at)`` of the messages of the session where ``question`` was last asked."""
    with sqlite3.connect(server.data_dir / "docmind.db") as conn:
        session = conn.execute("SELECT session_id FROM messages WHERE content = ? ORDER BY id DESC LIMIT 1",
                               (question,)).fetchone()[0]
        return conn.execute("SELECT role, status, created_at FROM messages WHERE session_id = ? ORDER BY id",
                            (session,)).fetchall()


def test_regenerate_answers_the_last_question_again(page, server: Server) -> None:
    question = "Summarise the warranty terms"
    before = _stored_turns(server, question)
    page.evaluate(_RECORD_RENDERS)
    page.locator("#docmind-regenerate").click()
    deadline = time.monotonic() + 120
    while (after := _stored_turns(server, question))[-1][2] == before[-1][2] or after[-1][1] != "complete":
        assert time.monotonic() < deadline, "the question was not answered again"
        time.sleep(0.2)
    page.locator("#docmind-send").wait_for(state="visible")
    assert [m[:2] for m in after] == [m[:2] for m in before]  # the last turn was replaced, not added
    assert after[-2][2] > before[-2][2]  # the question itself was asked again
    assert page.locator("#docmind-chatbot").inner_text().count(question) == 1
    assert all(text.count(question) <= 1 for text in page.evaluate("() => window.__renders"))  # never shown twice


def test_after_reload_the_session_is_listed_and_exports(page, artifacts: Path) -> None:
    page.reload()
    page.locator("#docmind-session-picker input").click()  # the Chat tab's session picker
    page.get_by_role("option", name="Summarise the warranty terms").click()
    page.locator("#docmind-chatbot").get_by_text("Summarise the warranty terms").first.wait_for()
    page.get_by_role("tab", name="Chats").click()
    table = page.locator("#docmind-sessions-table")
    table.get_by_text("Summarise the warranty terms").click()
    page.locator("#docmind-sessions-summary").get_by_text("2 messages").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export Markdown").click()
    exported = Path(download.value.path()).read_text()
    assert exported.startswith("# Summarise the warranty terms") and "## DocMind" in exported
    page.screenshot(path=artifacts / "07-sessions-export.png", full_page=True)
    page.get_by_role("button", name="Open in Chat").click()
    page.locator("#docmind-chatbot").get_by_text("Summarise the warranty terms").first.wait_for()
    assert _selected_tab(page) == "Chat"


def test_sessions_search_import_and_delete_with_confirmation(page, tmp_path: Path, artifacts: Path) -> None:
    page.get_by_role("tab", name="Chats").click()
    table = page.locator("#docmind-sessions-table")
    page.get_by_placeholder("Search all chats…").fill("Zorblax")
    page.get_by_role("button", name="Search").click()
    table.get_by_text("[Zorblax]").filter(visible=True).first.wait_for()  # the matching snippet
    assert "Summarise the warranty terms" not in table.inner_text()

    table.get_by_text("What does the Zorblax warranty cover?").filter(visible=True).first.click()
    page.locator("#docmind-sessions-summary").get_by_text("What does the Zorblax warranty cover?").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSON").click()
    exported = tmp_path / "export.json"
    exported.write_bytes(Path(download.value.path()).read_bytes())
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import a JSON export…").click()
    chooser.value.set_files(str(exported))
    page.locator("#docmind-import-notice").get_by_text("Imported").wait_for()
    page.get_by_role("button", name="Show all").click()
    page.wait_for_function(
        "() => document.querySelector('#docmind-sessions-table').innerText.split('Zorblax warranty cover').length == 3")

    page.get_by_role("button", name="Delete…").click()
    page.get_by_text("This cannot be undone").wait_for()
    page.screenshot(path=artifacts / "08-delete-confirmation.png", full_page=True)
    page.get_by_role("button", name="Yes, delete it").click()
    page.wait_for_function(
        "() => document.querySelector('#docmind-sessions-table').innerText.split('Zorblax warranty cover').length == 2")


def test_remove_a_document_with_confirmation(page) -> None:
    page.get_by_role("tab", name="Documents").click()
    library = page.locator("#docmind-library")
    library.get_by_text("warranty.txt").filter(visible=True).first.click()
    page.get_by_role("button", name="Remove selected document…").click()
    page.get_by_text("from the library? Chats keep their answers.").wait_for()
    page.get_by_role("button", name="Yes, remove it").click()
    page.wait_for_function("() => !document.querySelector('#docmind-library').innerText.includes('warranty.txt')")
    page.locator("#docmind-status").get_by_text("Documents: 2").wait_for(timeout=3000)  # the folder's two files stay
    assert "Your library: 2 documents" in page.locator("#docmind-ingest-summary").inner_text()


def test_two_browser_tabs_chat_at_once_in_their_own_sessions(context, server: Server, artifacts: Path) -> None:
    pages = [context.new_page() for _ in range(2)]
    for index, tab in enumerate(pages):
        tab.set_default_timeout(WAIT_MS)
        tab.goto(server.url)
        tab.get_by_role("tab", name="Chat", exact=True).wait_for()
        tab.locator("#docmind-chatbot .message-row").first.wait_for()  # the last chat reopens in a new tab
        tab.get_by_role("button", name="New chat").click()
        tab.locator("#docmind-question textarea").fill(f"Tab {index} asks about returns")
    for tab in pages:
        tab.locator("#docmind-send").click()
    for index, tab in enumerate(pages):
        tab.locator("#docmind-chatbot").get_by_text(f"Tab {index} asks about returns").wait_for()
        tab.locator("#docmind-send").wait_for(state="visible")
        tab.locator("#docmind-regenerate").wait_for(state="visible")
        assert tab.locator("#docmind-session-picker input").input_value().startswith(f"Tab {index} asks about returns · ")
    pages[1].screenshot(path=artifacts / "09-second-tab.png", full_page=True)
    for tab in pages:
        tab.close()


def test_every_request_went_to_the_app_itself(requests_seen: list[str], server: Server) -> None:
    assert len(requests_seen) > 20
    hosts = {urllib.parse.urlsplit(url).hostname for url in requests_seen if not url.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, f"the page contacted {hosts - {'127.0.0.1'}}"
