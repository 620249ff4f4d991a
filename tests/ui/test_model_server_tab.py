"""The Model tab's "Model server" block in Debian Chromium: a user with no model points DocMind at a real
``transformers serve`` on loopback, tests the connection, answers with it, and switches back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.ui.conftest import Server, app_page


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No model on disk: only the server can answer."""
    return {"HF_HUB_OFFLINE": "1", "DOCMIND_MAX_NEW_TOKENS": "24"}


@pytest.fixture(scope="module")
def page(browser, server: Server):
    with app_page(browser, server.url, height=1400) as page:
        page.get_by_role("tab", name="Chat", exact=True).wait_for()
        yield page


def test_switch_to_a_model_server_and_back(page, server: Server, served_tiny_model, artifacts: Path) -> None:
    page.get_by_role("tab", name="Model").click()
    page.get_by_text("Answer with a model server").click()
    block = page.locator("#docmind-model-server")
    block.get_by_text("Only the passages DocMind finds for a question are sent").wait_for()
    block.get_by_text("applies to the built-in model only").wait_for()  # the thinking limit, said plainly
    page.locator("#docmind-server-url textarea, #docmind-server-url input").first.fill("http://127.0.0.1:1/v1")
    page.locator("#docmind-server-test").click()
    page.locator("#docmind-server-result").get_by_text("cannot be reached").wait_for()

    page.locator("#docmind-server-url textarea, #docmind-server-url input").first.fill(served_tiny_model.base_url)
    block.get_by_role("button", name="Find models").click()
    page.locator("#docmind-server-result").get_by_text("The server offers 1 model(s).").wait_for()
    page.locator("#docmind-server-test").click()
    page.locator("#docmind-server-result").get_by_text("Connected:").wait_for()
    page.locator("#docmind-server-use").click()
    page.locator("#docmind-server-result").get_by_text("Answers now come from this server.").wait_for()
    page.locator("#docmind-status").get_by_text("ready").wait_for()
    page.screenshot(path=artifacts / "model-server-tab.png", full_page=True)
    saved = tomllib.loads((server.data_dir / "config.toml").read_text())
    assert saved["llm_base_url"] == served_tiny_model.base_url and saved["llm_model"] == served_tiny_model.model

    page.get_by_role("tab", name="Chat", exact=True).click()
    page.locator("#docmind-question textarea").fill("Hello server?")
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text("Hello server?").last.wait_for()
    page.locator("#docmind-send").wait_for(state="visible")
    chat = page.locator("#docmind-chatbot").inner_text()
    assert "No language model is downloaded" not in chat, "the server answered, not the search fallback"

    page.get_by_role("tab", name="Model").click()
    page.locator("#docmind-server-off").click()
    page.locator("#docmind-server-result").get_by_text("built-in model again").wait_for()
    assert "llm_base_url" not in tomllib.loads((server.data_dir / "config.toml").read_text())
