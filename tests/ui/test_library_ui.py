"""Collections, the chat's scope, watched folders and export/import in a real app and a real browser,
plus the scoped ``/chat`` endpoint. No model is on disk, so answers are search results (fast, and
their sources show what was searched)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from tests.cache.conftest import run_cli
from tests.ui.a11y import assert_accessible
from tests.ui.conftest import Server, start_server, stop_server

QUESTION = "what do you do with apples"


@pytest.fixture(scope="module")
def library_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """An app whose library has two folders of apple notes, the kitchen one in a collection already."""
    base = tmp_path_factory.mktemp("library-ui")
    docs = base / "docs"
    for folder, notes in {"orchard": ["Prune the old apple tree in late winter before the buds open.",
                                      "Grafting an apple scion onto rootstock controls the tree's size."],
                          "kitchen": ["Apple pie: slice the apples, add cinnamon and bake.",
                                      "Apple sauce: cook the apples slowly with a little sugar."]}.items():
        (docs / folder).mkdir(parents=True)
        for n, text in enumerate(notes):
            (docs / folder / f"{folder}{n}.txt").write_text(text, encoding="utf-8")
    data = base / "data"
    for args in (("ingest", str(docs)), ("collections", "create", "Kitchen"),
                 ("collections", "add", "Kitchen", str(docs / "kitchen"))):
        assert run_cli("--data-dir", str(data), *args).returncode == 0
    server = start_server(data, base / "server.log")
    yield server, docs
    stop_server(server)


def rows(server: Server, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(server.data_dir / "docmind.db") as conn:
        return conn.execute(sql, params).fetchall()


def test_chat_endpoint_takes_a_scope(library_server: tuple[Server, Path]) -> None:
    server, docs = library_server
    client = Client(server.url, verbose=False)
    result = client.predict(QUESTION, "", True, ["Kitchen"], api_name="/chat")
    assert result["done"] and result["citations"]
    assert {Path(c["source"]).parent for c in result["citations"]} == {docs / "kitchen"}
    kept = client.predict(QUESTION, result["session"], True, api_name="/chat")  # no scope given: the chat keeps its own
    assert {Path(c["source"]).parent for c in kept["citations"]} == {docs / "kitchen"}
    wrong = client.predict(QUESTION, "", True, ["Garden"], api_name="/chat")
    assert "no collection named 'Garden'" in wrong["error"]


def test_collections_scope_and_export_in_the_browser(library_server: tuple[Server, Path], browser, artifacts: Path,
                                                     tmp_path: Path) -> None:
    server, docs = library_server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url)
    page.wait_for_function(  # with no model on disk the app opens on the Model tab once the page is live
        "() => document.querySelector('[role=tab][aria-selected=true]')?.innerText.trim() == 'Model'")
    page.get_by_role("tab", name="Documents").click()
    page.get_by_role("button", name="Collections: groups of documents").click()
    page.get_by_label("New collection").fill("Orchard")
    page.get_by_role("button", name="Create collection").click()
    outcome = page.locator("#docmind-collection-outcome")
    outcome.get_by_text("Created Orchard").wait_for()
    page.locator("#docmind-collection-documents input").click()
    for name in ("orchard0.txt", "orchard1.txt"):
        page.get_by_role("option", name=name).click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Add to collection").click()
    outcome.get_by_text("Added 2 documents to Orchard").wait_for()
    page.locator("#docmind-collection-members").get_by_text("orchard0.txt").wait_for()
    page.get_by_role("button", name="Watched folders: folders DocMind keeps").click()
    page.get_by_label("Folder to watch").fill(str(docs / "orchard"))
    page.get_by_role("button", name="Watch this folder").click()
    folders = page.locator("#docmind-watched-folders")
    folders.get_by_text(str(docs / "orchard")).filter(visible=True).first.wait_for()
    folders.get_by_text("watching", exact=True).filter(visible=True).first.wait_for(timeout=60_000)  # the app's watcher reports its state
    page.screenshot(path=artifacts / "library-collections.png", full_page=True)
    assert_accessible(page, "the Documents tab with its collections and watched folders open")

    page.get_by_role("tab", name="Chat", exact=True).click()
    page.get_by_role("button", name="New chat").click()  # the page reopened the API test's chat, scoped to Kitchen
    page.locator("#docmind-scope-chooser input").click()
    page.get_by_role("option", name="Orchard").click()
    page.keyboard.press("Escape")
    header = page.locator("#docmind-chat-scope")
    header.get_by_text("Orchard").wait_for()
    page.locator("#docmind-question textarea").fill(QUESTION)
    page.locator("#docmind-send").click()
    page.locator("#docmind-chatbot").get_by_text("orchard0.txt").first.wait_for(timeout=120_000)  # a source shown
    page.locator("#docmind-send").wait_for(state="visible")  # Stop turns back into Send: the turn is stored
    [(session_id,)] = rows(server, "SELECT session_id FROM session_scope_changes WHERE collections = ?",
                           ('["Orchard"]',))
    [(extra,)] = rows(server, "SELECT extra FROM messages WHERE session_id = ? AND role = 'assistant'", (session_id,))
    cited = json.loads(extra)["citations"]
    assert cited and {Path(c["source"]).parent for c in cited} == {docs / "orchard"}
    page.screenshot(path=artifacts / "library-chat-scope.png")
    assert_accessible(page, "the Chat tab with a chosen collection")

    page.locator("#docmind-scope-chooser [title=Clear]").click()  # mid-chat, back to all documents
    header.get_by_text("All documents").wait_for()
    header.get_by_text("changed at").wait_for()
    assert [r[0] for r in rows(server, "SELECT collections FROM session_scope_changes WHERE session_id = ?"
                                       " ORDER BY id", (session_id,))] == ['["Orchard"]', "[]"]

    page.get_by_role("tab", name="Documents").click()
    page.get_by_role("button", name="Move to another computer").click()
    page.get_by_role("button", name="Export everything", exact=True).click()
    page.locator("#docmind-transfer-outcome").get_by_text("Exported 4 documents").wait_for()
    with page.expect_download() as download:
        page.locator("#docmind-export-file a").first.click()
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    page.locator("#docmind-import-file input[type=file]").set_input_files(str(saved))
    page.get_by_role("button", name="Import", exact=True).click()
    page.locator("#docmind-transfer-outcome").get_by_text("Imported 0 documents (4 were already here)").wait_for()
    page.screenshot(path=artifacts / "library-move.png", full_page=True)
    imported = run_cli("--data-dir", str(tmp_path / "copy"), "import", str(saved), "--json")
    assert json.loads(imported.stdout)["documents_added"] == 4
    page.close()
