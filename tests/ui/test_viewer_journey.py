"""A user checks citations in Debian Chromium: one click on [n] or a Sources entry opens the cited passage,
highlighted, in the viewer panel; the Documents tab opens any document; a document's script never runs.

The server has no model (answers are search results). A model's answer comes from a scripted LLM run through
the real agent over the server's library, then reopened in the page. Every request must go to 127.0.0.1.
Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cache.files import make_docx, make_pdf
from tests.ui.a11y import assert_accessible
from tests.ui.conftest import Server, WAIT_MS, app_page

SENTENCE = "The Zorblax turbine must be serviced every ninety days by a certified technician."
HERON = "The blue heron nests near the quiet northern lake every spring."


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1"}  # no model: answers are search results


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(browser, server: Server, requests_seen: list[str]):
    def listen(page) -> None:
        page.context.on("request", lambda request: requests_seen.append(request.url))  # the viewer's frame too
        page.on("dialog", lambda dialog: pytest.fail(f"a document ran a script: {dialog.message}"))

    with app_page(browser, server.url, prepare=listen) as page:
        page.get_by_text("Recommended for this computer").wait_for()  # with no model, the page opens on the Model tab
        yield page


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    pages = [f"Page {n} describes the cooling fins of model {n} in some detail." for n in range(1, 13)]
    pages[6] = SENTENCE
    html = folder / "script.html"
    html.write_text("<html><head><title>Herons</title></head><body><main><p>Herons are patient hunters.</p>"
                    "<p>Shown as text: &lt;script&gt;alert('x')&lt;/script&gt;</p>"
                    "<script>alert('ran'); window.parent.documentRan = true;</script>"
                    "<img src=missing onerror=\"alert('img')\"></main></body></html>")
    return {"pdf": make_pdf(folder / "turbine-manual.pdf", pages),
            "docx": make_docx(folder / "lake-notes.docx", ["Field notes.", HERON, "More notes."]),
            "html": html}


def _viewer(page, name: str):
    """The viewer panel's document ``name``, once it has drawn its page (and highlight)."""
    page.locator("#docmind-viewer-panel").wait_for(state="visible")
    frame = page.frame_locator("#docmind-viewer-frame")
    frame.locator("h1", has_text=name).wait_for()  # not the document the panel showed before
    frame.locator("body[data-ready=yes]").wait_for()
    return frame


def _highlighted(frame) -> str:
    return " ".join(" ".join(frame.locator("mark.docmind-highlight").all_inner_texts()).split())


def _ask(page, question: str) -> None:
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.locator("#docmind-question textarea").fill(question)
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text(question).last.wait_for()
    page.locator("#docmind-send").wait_for(state="visible")


def _close_viewer(page) -> None:
    page.get_by_role("button", name="Close the document viewer").click()
    page.locator("#docmind-viewer-panel").wait_for(state="hidden")


def test_upload_a_pdf_a_docx_and_a_web_page(page, documents: dict[str, Path]) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#docmind-upload input[type=file]").set_input_files([str(p) for p in documents.values()])
    page.locator("#docmind-ingest-summary").get_by_text("All 3 files added.").wait_for(timeout=WAIT_MS * 3)


def test_a_citation_in_a_search_answer_opens_the_pdf_at_page_7_highlighted(page, artifacts: Path) -> None:
    _ask(page, "How often must the Zorblax turbine be serviced?")
    answer = page.locator("#docmind-chatbot .bot-row").filter(has_text="Search result").last
    link = answer.locator("a.docmind-cite[href*='page=7']").first
    link.click()
    frame = _viewer(page, "turbine-manual.pdf")
    assert frame.locator("body").get_attribute("data-page") == "7"
    assert frame.locator("#docmind-page-label").inner_text() == "Page 7 of 12"
    assert SENTENCE in _highlighted(frame)
    assert frame.locator("mark.docmind-highlight").first.is_visible()
    assert frame.locator("#docmind-locate-note").is_hidden()  # found: no "could not be located" note
    assert "turbine-manual.pdf" in frame.locator(".docmind-path").inner_text()
    page.screenshot(path=artifacts / "viewer-01-pdf-page-7.png")
    assert_accessible(page, "the Chat tab with the viewer open")
    frame.get_by_role("button", name="Next page").click()
    frame.locator("#docmind-page-label").get_by_text("Page 8 of 12").wait_for()
    assert frame.locator("mark.docmind-highlight").count() == 0
    _close_viewer(page)
    link.click()  # the same citation again: back at its page, without loading the PDF again
    frame.locator("body[data-page='7'][data-ready=yes] mark.docmind-highlight").first.wait_for()
    assert frame.locator("#docmind-page-label").inner_text() == "Page 7 of 12"
    _close_viewer(page)


def test_a_sources_entry_opens_the_docx_passage_highlighted(page, artifacts: Path) -> None:
    _ask(page, "Where does the blue heron nest?")
    sources = page.locator("#docmind-chatbot details.docmind-sources").last
    sources.locator("summary").click()
    sources.locator("a.docmind-cite", has_text="lake-notes.docx").first.click()
    frame = _viewer(page, "lake-notes.docx")
    assert HERON in _highlighted(frame)
    assert frame.locator("mark.docmind-highlight").first.is_visible()
    page.screenshot(path=artifacts / "viewer-02-docx.png")
    _close_viewer(page)


def test_a_models_answer_links_its_citations_and_marks_an_unsupported_claim(page, server: Server, artifacts: Path) -> None:
    from docmind.agent.events import Done
    from docmind.config import load_settings
    from tests.agent.conftest import run_turn, scripted_service

    search = 'Thought: search.\nAction: search_documents\nAction Input: {"query": "Zorblax turbine serviced"}'
    answer = f"{SENTENCE[:-1]} [1]. It also needs a new paint job every week [1]."
    service, _ = scripted_service(load_settings(data_dir=server.data_dir), search, f"Thought: ok.\nAnswer: {answer}")
    with ThreadPoolExecutor(1) as worker:  # Playwright's sync API holds this thread's event loop
        done = worker.submit(asyncio.run, run_turn(service, None, "When is the turbine serviced?")).result()[-1]
    assert isinstance(done, Done) and done.citations[0].page == 7
    page.reload()  # the page reopens the latest chat: the scripted one
    page.get_by_text("Recommended for this computer").wait_for()
    page.get_by_role("tab", name="Chat", exact=True).click()
    bot = page.locator("#docmind-chatbot .bot-row").filter(has_text="paint job").last
    marker = bot.locator(".docmind-unsupported")
    marker.wait_for()
    assert marker.get_attribute("title") == "Not found in source [1]"
    assert bot.locator(".docmind-unsupported").count() == 1  # the supported sentence is not marked
    page.screenshot(path=artifacts / "viewer-03-model-answer.png")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    bot.hover()
    page.locator("#docmind-chatbot button[aria-label='Copy message']").last.click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert done.answer in copied and "[1] turbine-manual.pdf · page 7" in copied  # the answer and its sources
    assert "docmind-cite" not in copied and "docmind-unsupported" not in copied  # as plain text, no markup
    bot.locator("a.docmind-cite").first.click()
    frame = _viewer(page, "turbine-manual.pdf")
    assert frame.locator("body").get_attribute("data-page") == "7" and SENTENCE in _highlighted(frame)
    _close_viewer(page)


def test_the_documents_tab_views_a_web_page_as_text_and_runs_none_of_its_script(page, artifacts: Path) -> None:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#docmind-library").get_by_text("script.html").filter(visible=True).first.click()
    page.get_by_role("button", name="View selected document").click()
    frame = _viewer(page, "script.html")
    text = frame.locator("#docmind-document").inner_text()
    assert "Herons are patient hunters." in text and "<script>alert('x')</script>" in text  # its text, as text
    assert page.evaluate("() => window.documentRan") is None
    assert frame.locator("#docmind-document script, #docmind-document img").count() == 0
    page.screenshot(path=artifacts / "viewer-04-documents-tab.png")
    assert_accessible(page, "the Documents tab with the viewer open")
    _close_viewer(page)
    page.get_by_role("button", name="View selected document").wait_for()


def test_the_viewer_page_itself_passes_the_audit(browser, page, server: Server, requests_seen: list[str]) -> None:
    link = page.evaluate("() => document.querySelector('#docmind-chatbot a.docmind-cite').getAttribute('href')")
    context = browser.new_context(bypass_csp=True)  # the page's policy forbids injected scripts such as axe
    context.on("request", lambda request: requests_seen.append(request.url))
    viewer = context.new_page()
    viewer.goto(urllib.parse.urljoin(server.url, link))
    viewer.locator("body[data-ready=yes]").wait_for()
    assert_accessible(viewer, "the document viewer page")
    context.close()


def test_every_request_went_to_the_app_itself(requests_seen: list[str]) -> None:
    assert any("/docmind/static/pdfjs/pdf.worker.min.mjs" in url for url in requests_seen)
    assert any(re.search(r"/docmind/file/[0-9a-f]{32}$", url) for url in requests_seen)
    hosts = {urllib.parse.urlsplit(url).hostname for url in requests_seen
             if not url.startswith(("data:", "blob:", "about:"))}
    assert hosts == {"127.0.0.1"}, f"the page contacted {hosts - {'127.0.0.1'}}"
