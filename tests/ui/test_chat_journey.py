"""A new user's first hour in the Chat and Chats tabs, in Debian Chromium against a real app with no model.

The tests run in file order on one page (issue #19): buttons that have nothing to do are disabled,
a search answer points to the Model tab and keeps the question in view, its sources open with one
click, a new chat is listed (with its date) as soon as it is asked, a reload reopens the last chat,
and the Chats tab shows no internal ids and confirms what it does. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ROOT, Server, WAIT_MS, app_page, start_server, stop_server

QUESTION = "What does the Zorblax warranty cover?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no model on disk and one document already in the library."""
    base = tmp_path_factory.mktemp("chat-journey")
    data, hf_home = base / "data", base / "hf-home"
    data.mkdir()
    document = base / "warranty.txt"
    document.write_text("The Zorblax warranty covers repairs for 3 years.\n\nReturns within 30 days.\n")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    subprocess.run([sys.executable, "-m", "docmind", "ingest", str(document)], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "DOCMIND_DATA_DIR": str(data), **env})
    running = start_server(data, base / "server.log", env=env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def page(browser, server: Server):
    with app_page(browser, server.url) as page:
        _opened_on_the_model_tab(page)
        page.get_by_role("tab", name="Chat", exact=True).click()
        yield page


def _opened_on_the_model_tab(page) -> None:
    """With no model, the app opens on the Model tab once the page has loaded."""
    page.wait_for_function("() => document.querySelector('[role=tab][aria-selected=true]')?.innerText.trim() "
                           "== 'Model'")


def _picker_value(page) -> str:
    return page.locator("#docmind-session-picker input").input_value()


def _send(page, question: str) -> None:
    page.locator("#docmind-question textarea").fill(question)
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text(question).last.wait_for()
    page.locator("#docmind-send").wait_for(state="visible")


def _in_chat_view(page, locator) -> bool:
    """Whether ``locator`` lies inside the chat's visible (scrolled) area."""
    box = page.locator("#docmind-chatbot [role=log]").bounding_box()
    item = locator.bounding_box()
    return bool(box and item) and item["y"] >= box["y"] - 1 and item["y"] + 10 <= box["y"] + box["height"]


def test_an_empty_chat_disables_send_and_regenerate_and_names_the_picker(page, artifacts: Path) -> None:
    send, regenerate = page.locator("#docmind-send"), page.locator("#docmind-regenerate")
    assert send.is_disabled() and regenerate.is_disabled()
    picker = page.locator("#docmind-session-picker")
    assert "Past chats" in picker.inner_text()
    assert picker.locator("input").get_attribute("placeholder") == "Choose a past chat to continue it…"
    page.locator("#docmind-question textarea").fill("   ")
    page.wait_for_timeout(500)
    assert send.is_disabled(), "Send is enabled for a blank question"
    page.locator("#docmind-question textarea").fill("W")
    page.wait_for_function("() => !document.querySelector('#docmind-send').disabled")
    page.locator("#docmind-question textarea").fill("")
    page.wait_for_function("() => document.querySelector('#docmind-send').disabled")
    assert page.locator(".toast-body").count() == 0 and "Error" not in page.locator("#docmind-chatbot").inner_text()
    page.screenshot(path=artifacts / "journey-01-empty-chat.png", full_page=True)


def test_a_search_answer_points_to_the_model_tab_and_keeps_the_question_in_view(page, artifacts: Path) -> None:
    for earlier in ("Hello there", "Is anyone reading this?"):  # enough history to need scrolling
        _send(page, earlier)
    _send(page, QUESTION)
    chat = page.locator("#docmind-chatbot")
    text = chat.inner_text()
    assert "Open the Model tab to download one" in text and "docmind model download" not in text
    question = chat.locator(".message-row.user-row").last
    assert QUESTION in question.inner_text()
    notice = chat.get_by_text("No language model is downloaded yet").last
    assert _in_chat_view(page, question) and _in_chat_view(page, notice), "the question scrolled out of view"
    assert page.locator("#docmind-open-model").is_visible()
    assert not page.locator("#docmind-regenerate").is_disabled()
    page.screenshot(path=artifacts / "journey-02-search-answer.png", full_page=True)


def test_sources_open_with_one_click_in_readable_type(page, artifacts: Path) -> None:
    summary = page.locator("#docmind-chatbot summary").filter(has_text="Sources (1): warranty.txt").last
    assert summary.is_visible()
    passage = page.locator("#docmind-chatbot details").last.get_by_text("covers repairs for 3 years").last
    assert not passage.is_visible()
    summary.click()
    passage.wait_for(state="visible")
    size = float(passage.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
    answer_size = float(page.locator("#docmind-chatbot .message-row.bot-row").last.evaluate(
        "e => getComputedStyle(e.querySelector('p') || e).fontSize").removesuffix("px"))
    assert size >= answer_size - 0.5, f"the passage is in smaller type ({size}px) than the answer ({answer_size}px)"
    page.screenshot(path=artifacts / "journey-03-sources-open.png", full_page=True)


def test_a_new_chat_is_listed_with_its_date_as_soon_as_it_is_asked(page, artifacts: Path) -> None:
    first = _picker_value(page)
    assert first.startswith("Hello there · today "), first
    page.get_by_role("button", name="New chat").click()
    page.wait_for_function("() => !document.querySelector('#docmind-chatbot .message-row')")
    assert page.locator("#docmind-regenerate").is_disabled() and _picker_value(page) == ""
    page.locator("#docmind-question textarea").fill("Hello there")  # the same first question again
    page.locator("#docmind-send").click()
    page.wait_for_function("() => document.querySelector('#docmind-session-picker input').value.includes('(2)')",
                           timeout=10_000)  # listed while the answer is still coming
    page.locator("#docmind-send").wait_for(state="visible")
    page.locator("#docmind-session-picker input").click()
    options = [o.replace("✓", "").strip() for o in page.get_by_role("option").all_inner_texts()]
    assert len([o for o in options if o.startswith("Hello there · today ")]) == 2 and len(set(options)) == 2, options
    page.screenshot(path=artifacts / "journey-04-picker.png", full_page=True)
    page.keyboard.press("Escape")


def test_a_reload_or_a_new_tab_reopens_the_last_chat(page, browser, server: Server, artifacts: Path) -> None:
    label = _picker_value(page)
    page.reload()
    _opened_on_the_model_tab(page)
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.locator("#docmind-chatbot").get_by_text("Hello there").first.wait_for()
    assert _picker_value(page) == label
    assert not page.locator("#docmind-regenerate").is_disabled()
    page.screenshot(path=artifacts / "journey-05-after-reload.png", full_page=True)
    other = browser.new_page()
    try:
        other.goto(server.url)
        _opened_on_the_model_tab(other)
        other.get_by_role("tab", name="Chat", exact=True).click()
        other.locator("#docmind-chatbot").get_by_text("Hello there").first.wait_for(timeout=WAIT_MS)
        expect(other.locator("#docmind-session-picker input")).to_have_value(label, timeout=WAIT_MS)
    finally:
        other.close()


def test_the_model_button_opens_the_model_tab(page) -> None:
    _send(page, "Anything else?")
    page.locator("#docmind-open-model").click()
    page.wait_for_function("() => document.querySelector('[role=tab][aria-selected=true]').innerText.trim() == 'Model'")
    page.get_by_role("tab", name="Chat", exact=True).click()


def test_the_chats_tab_hides_ids_and_confirms_rename_and_export(page, artifacts: Path) -> None:
    page.get_by_role("tab", name="Chats").click()
    assert page.get_by_role("tab", name="Sessions").count() == 0
    table = page.locator("#docmind-sessions-table")
    table.get_by_text("Hello there").filter(visible=True).first.wait_for()
    headers = table.locator("thead").inner_text()
    assert "Chat" in headers and "Started" in headers and "ID" not in headers and "Match" not in headers
    assert not re.search(r"\b[0-9a-f]{12,}\b", table.inner_text()), "an internal id is shown"
    table.get_by_text("Hello there").filter(visible=True).first.click()
    title = page.locator("#docmind-sessions-title textarea, #docmind-sessions-title input").first
    page.wait_for_function("() => document.querySelector('#docmind-sessions-title textarea, "
                           "#docmind-sessions-title input').value != ''")
    assert title.input_value() == "Hello there"  # that chat's first question is its title
    title.fill("Warranty questions")
    page.get_by_role("button", name="Rename").click()
    page.get_by_text("Chat renamed to “Warranty questions”.").wait_for()
    table.get_by_text("Warranty questions").filter(visible=True).first.wait_for()
    assert title.input_value() == "Warranty questions"
    page.screenshot(path=artifacts / "journey-06-renamed.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export Markdown").click()  # the owner-checked export route
    assert download.value.suggested_filename.startswith("Warranty-questions-")
    assert Path(download.value.path()).read_text().startswith("# Warranty questions")
    page.screenshot(path=artifacts / "journey-07-exported.png", full_page=True)
    page.get_by_placeholder("Search all chats…").fill("Zorblax")
    page.get_by_role("button", name="Search").click()
    table.locator("thead").get_by_text("Found text").wait_for()
