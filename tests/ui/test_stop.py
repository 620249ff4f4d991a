"""Stop, in Debian Chromium against a real app: a long answer stops at once, is kept in the session
marked as interrupted (also after a reload), and the next question is answered normally.

The server runs the tiny random-weight Qwen3 changed so that it can never emit its stop tokens, so
every answer runs to DOCMIND_MAX_NEW_TOKENS: long enough to press Stop in the middle of it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.fixtures.tiny_model import build_endless_model
from tests.ui.conftest import Server, WAIT_MS, app_page

ANSWER_TOKENS = 1200
QUESTION = "Tell me everything about the warranty"
FOLLOW_UP = "And what about returns?"


@pytest.fixture(scope="module")
def server_env(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    model = build_endless_model(tiny_model_dir, tmp_path_factory.mktemp("endless") / "model")
    return {"DOCMIND_MODEL_PATH": str(model), "DOCMIND_MAX_NEW_TOKENS": str(ANSWER_TOKENS), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def page(browser, server: Server):
    with app_page(browser, server.url) as page:
        page.locator("#docmind-status").get_by_text("ready").wait_for()
        yield page


def _answers(server: Server) -> list[tuple[str, str]]:
    """(status, content) of every stored answer, oldest first."""
    with sqlite3.connect(server.data_dir / "docmind.db") as conn:
        return conn.execute("SELECT status, content FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()


def _chat_text(page) -> str:
    return page.locator("#docmind-chatbot").inner_text()


def test_stop_keeps_the_partial_answer_marked_as_interrupted(page, server: Server, artifacts: Path) -> None:
    page.locator("#docmind-question textarea").fill(QUESTION)
    page.locator("#docmind-send").click()
    page.wait_for_function(  # the answer has been streaming for a while
        f"() => document.querySelector('#docmind-chatbot').innerText.split({QUESTION!r})[1]?.trim().length > 200")
    page.locator("#docmind-stop").click()
    pressed = time.monotonic()
    page.locator("#docmind-chatbot").get_by_text("stopped before the answer was finished").wait_for(timeout=10_000)
    page.locator("#docmind-send").wait_for(state="visible", timeout=10_000)
    settled = time.monotonic() - pressed
    shown = _chat_text(page)
    page.wait_for_timeout(1500)
    assert _chat_text(page) == shown, "the answer kept streaming after Stop"
    assert settled < 5, f"Stop took {settled:.1f} s to settle"
    page.screenshot(path=artifacts / "10-stopped.png", full_page=True)

    [(status, content)] = _answers(server)
    assert status == "interrupted" and len(content) > 50
    time.sleep(1)
    assert _answers(server) == [(status, content)], "the stopped answer was still being written"
    assert content[:50] in shown, "the chat does not show the stored partial answer"


def test_a_stopped_answer_is_shown_as_interrupted_after_reload(page) -> None:
    page.reload()
    page.locator("#docmind-session-picker input").click()
    page.get_by_role("option", name=QUESTION).click()
    chat = page.locator("#docmind-chatbot")
    chat.get_by_text(QUESTION).wait_for()
    chat.get_by_text("stopped before the answer was finished").wait_for()


def test_after_stop_the_next_question_is_answered(page, server: Server, artifacts: Path) -> None:
    page.locator("#docmind-question textarea").fill(FOLLOW_UP)
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text(FOLLOW_UP).wait_for()
    page.locator("#docmind-send").wait_for(state="visible", timeout=WAIT_MS * 2)
    (first_status, _), (status, content) = _answers(server)
    assert first_status == "interrupted" and status == "complete" and content
    assert _chat_text(page).count("stopped before the answer was finished") == 1
    page.screenshot(path=artifacts / "11-after-stop.png", full_page=True)
