"""A thinking model in Debian Chromium: the "Thinking" block shows from the first thought, collapsed, with a
live "Thinking… N s" title, and ends as a closed "Thinking" block once the turn is over (issue #19, item 13).

The server runs the tiny random Qwen3 with the Qwen3-4B-Thinking-2507 way of thinking: its chat template
opens ``<think>`` in the generation prompt, so the model's output is thinking from its first token.
It can never emit a stop token either, so each call thinks for all of DOCMIND_MAX_NEW_TOKENS (kept small:
the turn makes up to four calls before it answers that the model gave no answer).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.tiny_model import build_endless_model
from tests.ui.conftest import Server, app_page

THINK_TOKENS = 100
WAIT_MS = 120_000
QUESTION = "Why is the sky blue?"
THINKING_PROMPT = '{{- "<|im_start|>assistant\\n<think>\\n" }}'
"""The generation prompt of Qwen3-4B-Thinking-2507's template: it always opens the think block."""


def build_thinking_model(tiny_model_dir: Path, dest: Path) -> Path:
    """The endless tiny model with a chat template whose generation prompt opens ``<think>``."""
    model = build_endless_model(tiny_model_dir, dest)
    template_path = model / "chat_template.jinja"
    template = template_path.read_text()
    prompt = re.search(r"\{%- if add_generation_prompt %\}.*\{%- endif %\}\s*$", template, re.S)
    assert prompt, "the tiny model's template has no generation prompt block"
    template_path.write_text(template[:prompt.start()]
                             + "{%- if add_generation_prompt %}\n    " + THINKING_PROMPT + "\n{%- endif %}")
    return model


@pytest.fixture(scope="module")
def server_env(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    model = build_thinking_model(tiny_model_dir, tmp_path_factory.mktemp("thinking") / "model")
    return {"DOCMIND_MODEL_PATH": str(model), "DOCMIND_MAX_NEW_TOKENS": str(THINK_TOKENS), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def page(browser, server: Server):
    with app_page(browser, server.url, wait_ms=WAIT_MS) as page:
        page.locator("#docmind-status").get_by_text("ready").wait_for()
        yield page


def _thinking_title(page) -> str:
    titles = page.locator("#docmind-chatbot .title").all_inner_texts()
    return next((t.strip() for t in titles if t.strip().startswith("Thinking")), "")


def test_thinking_shows_from_its_first_token_collapsed_with_live_seconds(page, artifacts: Path) -> None:
    page.locator("#docmind-question textarea").fill(QUESTION)
    page.locator("#docmind-send").click()
    page.wait_for_function("() => [...document.querySelectorAll('#docmind-chatbot .title')]"
                           ".some(t => /Thinking… \\d+ s/.test(t.innerText))")
    assert page.locator("#docmind-stop").is_visible(), "the thinking block only appeared after the answer"
    first = _thinking_title(page)
    page.screenshot(path=artifacts / "journey-10-thinking-live.png", full_page=True)
    page.wait_for_function("(first) => [...document.querySelectorAll('#docmind-chatbot .title')]"
                           ".some(t => /Thinking… \\d+ s/.test(t.innerText) && t.innerText.trim() != first)",
                           arg=first)
    later = _thinking_title(page)
    assert int(re.search(r"(\d+) s", later)[1]) > int(re.search(r"(\d+) s", first)[1]), (first, later)
    assert page.locator("#docmind-stop").is_visible()
    thought = page.locator("#docmind-chatbot .title").filter(has_text="Thinking").first
    assert thought.get_attribute("aria-expanded") in (None, "false") and "expanded" not in (
        thought.get_attribute("class") or ""), "the thinking block is open by default"
    text = page.locator("#docmind-chatbot").inner_text()
    assert "<think>" not in text and "</think>" not in text


def test_once_over_the_thinking_block_is_closed_and_titled(page, artifacts: Path) -> None:
    page.locator("#docmind-stop").click()  # on this loaded machine a full answer takes minutes; Stop ends it too
    page.locator("#docmind-send").wait_for(state="visible")
    # Send comes back at once; the chat is redrawn from the stored turn a moment later.
    page.wait_for_function("() => [...document.querySelectorAll('#docmind-chatbot .title')]"
                           ".some(t => t.innerText.trim().startsWith('Thinking') && !t.innerText.includes('…'))")
    title = _thinking_title(page)
    assert title.startswith("Thinking") and "…" not in title, title
    page.screenshot(path=artifacts / "journey-11-thinking-done.png", full_page=True)
    page.locator("#docmind-chatbot .title").filter(has_text="Thinking").first.click()
    page.wait_for_timeout(300)
    page.screenshot(path=artifacts / "journey-12-thinking-opened.png", full_page=True)
