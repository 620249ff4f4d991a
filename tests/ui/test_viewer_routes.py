"""The document viewer's routes on a real running app: documents by id only, the right types, loopback only."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from docmind.cache.sources import document_id
from tests.cache.files import make_docx, make_pdf, make_pptx
from tests.ui.conftest import ROOT, Server, start_server, stop_server

SENTENCE = "The Zorblax turbine must be serviced every ninety days by a certified technician."
HERON = "The blue heron nests near the quiet northern lake every spring."


def _request(server: Server, raw_path: str, method: str = "GET", headers: dict | None = None,
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send a raw, unnormalised path (http.client sends it exactly as given)."""
    parsed = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        conn.request(method, raw_path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _docmind(data_dir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "docmind", *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DOCMIND_DATA_DIR": str(data_dir)}, timeout=600, check=True)
    return result.stdout


@pytest.fixture(scope="module")
def opened_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opened") / "opened.txt"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory, opened_log: Path) -> dict[str, str]:
    """No model; an ``xdg-open`` on PATH that writes down what it was asked to open."""
    bin_dir = tmp_path_factory.mktemp("bin")
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {opened_log}\n')
    opener.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def documents(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    pages = [f"Page {n} is about topic number {n}." for n in range(1, 10)]
    pages[6] = SENTENCE
    paths = {
        "pdf": make_pdf(folder / "manual.pdf", pages),
        "docx": make_docx(folder / "notes.docx", ["Intro.", HERON, "The end."]),
        "pptx": make_pptx(folder / "deck.pptx", ["Welcome slide.", "Herons fly south in the autumn."]),
        "html": folder / "page.html",
        "gone": folder / "gone.txt",
    }
    paths["html"].write_text("<html><body><main><p>Safe words.</p><p>&lt;script&gt;alert(1)&lt;/script&gt; as text"
                             "</p><script>document.title='PWNED'</script></main></body></html>")
    paths["gone"].write_text("This document will be removed from the library.")
    report = json.loads(_docmind(server.data_dir, "ingest", str(folder), "--json"))
    assert report["files_failed"] == [] and report["files_new"] == 5
    return paths


def _view(server: Server, path: Path, query: str = "") -> tuple[int, dict[str, str], str]:
    status, headers, body = _request(server, f"/docmind/view/{document_id(path)}{query}")
    return status, headers, body.decode()


def test_a_pdf_is_served_as_a_pdf_and_its_viewer_page_runs_only_the_apps_scripts(server, documents) -> None:
    status, headers, page = _view(server, documents["pdf"], "?page=7")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert 'data-page="7"' in page and str(documents["pdf"]) in page and "Open original" in page
    status, headers, body = _request(server, f"/docmind/file/{document_id(documents['pdf'])}")
    assert status == 200 and body.startswith(b"%PDF") and body == documents["pdf"].read_bytes()
    assert headers["content-type"] == "application/pdf" and headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("inline")


def test_other_documents_are_shown_as_text_with_the_passage_marked(server, documents) -> None:
    from docmind.cache.sources import passage_key
    from docmind.storage import open_database

    db = open_database(server.data_dir / "docmind.db")
    [(chunk,)] = db.read("SELECT text FROM chunks WHERE source = ?", (str(documents["docx"]),))
    db.close()
    status, _, page = _view(server, documents["docx"], f"?passage={passage_key(chunk)}")
    assert status == 200 and '<mark class="docmind-highlight"' in page
    marked = page.split('<mark class="docmind-highlight" id="docmind-highlight">')[1].split("</mark>")[0]
    assert HERON in marked
    status, _, page = _view(server, documents["pptx"], "?page=2")
    assert status == 200 and "<h2>Slide 1</h2>" in page and "<h2>Slide 2</h2>" in page
    status, headers, _ = _request(server, f"/docmind/file/{document_id(documents['docx'])}")
    assert status == 404  # only PDFs are served as files


def test_an_html_document_is_shown_as_escaped_text_only(server, documents) -> None:
    status, _, page = _view(server, documents["html"])
    assert status == 200 and "Safe words." in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; as text" in page  # the page's own text, escaped
    assert "PWNED" not in page  # its script element is not shown, let alone run
    assert page.count("<script") == 1 and '<script type="module" src="/docmind/static/viewer.js">' in page


@pytest.mark.parametrize("raw_path", [
    "/docmind/view/00000000000000000000000000000000",  # no such document
    "/docmind/view/..%2F..%2F..%2Fetc%2Fpasswd",
    "/docmind/view/%2E%2E",
    "/docmind/view/abc%2F..%2Fdef",
    "/docmind/file/..%5C..%5Cwindows",
    "/docmind/view//etc/passwd",
    "/docmind/file//etc/passwd",
    "/docmind/static/..%2Fviewer.py",
    "/docmind/static/../../config.py",
])
def test_unknown_ids_path_characters_and_raw_paths_are_404(server, documents, raw_path: str) -> None:
    status, _, body = _request(server, raw_path)
    assert status == 404, body[:200]


def test_a_raw_path_of_a_library_document_is_404(server, documents) -> None:
    for kind in ("pdf", "docx"):
        for route in ("view", "file"):
            status, _, _ = _request(server, f"/docmind/{route}/{urllib.parse.quote(str(documents[kind]), safe='')}")
            assert status == 404
            status, _, _ = _request(server, f"/docmind/{route}{documents[kind]}")
            assert status == 404


def test_open_original_opens_the_users_file_with_the_default_app(server, documents, opened_log: Path) -> None:
    path = f"/docmind/open/{document_id(documents['docx'])}"
    status, _, _ = _request(server, path, "POST")
    assert status == 403 and not opened_log.exists()  # a plain cross-site form post is refused
    status, _, body = _request(server, path, "POST", {"X-DocMind-Action": "open"})
    assert status == 200 and json.loads(body)["opened"] is True
    for _ in range(50):
        if opened_log.exists():
            break
        __import__("time").sleep(0.1)
    assert opened_log.read_text().splitlines() == [str(documents["docx"])]


def test_locate_finds_the_passage_among_a_pages_text_items_or_says_it_could_not(server, documents) -> None:
    from docmind.cache.sources import passage_key
    from docmind.storage import open_database
    from docmind.ui.viewer import NOT_LOCATED

    db = open_database(server.data_dir / "docmind.db")
    [(chunk,)] = db.read("SELECT text FROM chunks WHERE source = ? AND page = 7", (str(documents["pdf"]),))
    db.close()
    path = f"/docmind/locate/{document_id(documents['pdf'])}"

    def post(items: list[str]) -> dict:
        body = json.dumps({"page": 7, "passage": passage_key(chunk), "items": items}).encode()
        status, headers, reply = _request(server, path, "POST", {"Content-Type": "application/json"}, body)
        assert status == 200 and headers["x-content-type-options"] == "nosniff"
        return json.loads(reply)

    found = post(["Header", "The Zorblax turbine must be ser-", "viced every ninety days by a certi\ufb01ed", "technician."])
    assert found["found"] and found["exact"] and found["note"] == ""
    assert found["ranges"] == [[1, 0, 32], [2, 0, 37], [3, 0, 11]]
    missing = post(["A page about something else entirely."])
    assert not missing["found"] and missing["note"] == NOT_LOCATED


def test_a_removed_document_is_no_longer_served_and_the_others_survive_a_restart(server, documents) -> None:
    assert _view(server, documents["gone"])[0] == 200
    _docmind(server.data_dir, "docs", "remove", str(documents["gone"]))
    status, headers, page = _view(server, documents["gone"])
    assert status == 404 and "not in your library any more" in page  # said in plain words in the panel
    assert headers["content-type"].startswith("text/html") and headers["x-content-type-options"] == "nosniff"
    stop_server(server)
    restarted = start_server(server.data_dir, server.log_path.with_name("restarted.log"), env={"HF_HUB_OFFLINE": "1"})
    try:
        assert _view(restarted, documents["pdf"], "?page=7")[0] == 200
        assert _view(restarted, documents["gone"])[0] == 404
        documents["docx"].rename(documents["docx"].with_name("moved.docx"))  # the user moves their file
        status, _, page = _view(restarted, documents["docx"])
        assert status == 404 and f"no longer at {documents['docx']}" in page
    finally:
        stop_server(restarted)


def test_other_computers_are_refused(tmp_path: Path) -> None:
    """The viewer answers a client on another address only when it is signed in (here: never), and a local
    client only when it names the app by a loopback address."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from docmind.storage import open_database
    from docmind.ui.viewer import add_routes

    source = make_pdf(tmp_path / "a.pdf", [SENTENCE])
    db = open_database(tmp_path / "docmind.db")
    db.write(lambda conn: conn.execute(
        "INSERT INTO documents (source, sha256, size, mtime, chunks, ingested_at) VALUES (?, '', 0, 0, 0, '')",
        (str(source),)))
    app = FastAPI()
    add_routes(app, type("Context", (), {"db": db, "library_dir": tmp_path / "library"})())
    path = f"/docmind/file/{document_id(source)}"
    assert TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000)).get(path).status_code == 200
    assert TestClient(app, base_url="http://192.0.2.1:8000", client=("192.0.2.7", 50000)).get(path).status_code == 403
    assert TestClient(app, base_url="http://192.0.2.1:8000", client=("192.0.2.7", 50000)).get("/docmind/static/viewer.js").status_code == 200
    rebound = TestClient(app, base_url="http://attacker.example", client=("127.0.0.1", 50000))
    assert rebound.get(path).status_code == 403  # a page whose host name resolves to 127.0.0.1 (DNS rebinding)
    db.close()



@pytest.mark.parametrize("name, content", [
    ("notes.md", "# Title\n\nSome intro.\n\nThe heron waits in the reeds.\n"),
    ("notes.rst", "Title\n=====\n\nSome intro.\n\nThe heron waits in the reeds.\n"),
    ("notes.txt", "Some intro.\nThe heron waits in the reeds.\n"),
    ("birds.csv", "bird,habit\nsparrow,hops\nheron,The heron waits in the reeds.\n"),
])
def test_text_formats_show_their_text_with_the_passage_marked(tmp_path: Path, name: str, content: str) -> None:
    from docmind.cache.sources import LibraryDocument
    from docmind.ui.viewer import document_body

    path = tmp_path / name
    path.write_text(content)
    body = document_body(LibraryDocument(document_id(path), path), None, "The heron waits in the reeds.", True)
    assert '<mark class="docmind-highlight" id="docmind-highlight">The heron waits in the reeds.</mark>' in body
    assert "Some intro" in body or "sparrow" in body  # the whole document, not just the passage
    assert "docmind-note" not in body  # found exactly: no note


def test_a_picture_is_shown_above_the_text_read_from_it_and_served_as_its_own_type(tmp_path: Path) -> None:
    from docmind.cache.sources import passage_key
    from docmind.storage import open_database
    from tests.cache.files import scanned_pages

    picture = tmp_path / "docs" / "note.png"
    picture.parent.mkdir()
    scanned_pages([HERON])[0].save(picture)
    data_dir = tmp_path / "data"
    assert json.loads(_docmind(data_dir, "ingest", str(picture.parent), "--json"))["files_new"] == 1
    db = open_database(data_dir / "docmind.db")
    [(chunk,)] = db.read("SELECT text FROM chunks WHERE source = ?", (str(picture),))
    db.close()
    server = start_server(data_dir, tmp_path / "server.log", env={"HF_HUB_OFFLINE": "1"})
    try:
        status, _, page = _view(server, picture, f"?passage={passage_key(chunk)}")
        assert status == 200
        image = f'<img class="docmind-picture" src="/docmind/file/{document_id(picture)}"'
        assert image in page and page.index(image) < page.index('<mark class="docmind-highlight"')
        assert "heron" in page.split('id="docmind-highlight">')[1].split("</mark>")[0].lower()
        status, headers, body = _request(server, f"/docmind/file/{document_id(picture)}")
        assert status == 200 and body == picture.read_bytes()
        assert headers["content-type"] == "image/png" and headers["x-content-type-options"] == "nosniff"
    finally:
        stop_server(server)
