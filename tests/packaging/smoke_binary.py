"""Smoke test of the BUILT single file, not the source tree (``make package-smoke``, after ``make package``).

Every command runs the binary from a clean temporary HOME and data dir, offline, with
``DOCMIND_MODEL_PATH`` at the tiny test model. The first command also unpacks the app into the
HOME's cache. This file is not named test_*.py, so ``make test`` does not collect it:

    DOCMIND_BINARY=dist/DocMind .venv/bin/python -m pytest -p no:cacheprovider tests/packaging/smoke_binary.py
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import AppProcess, start_app

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("DOCMIND_BINARY", ROOT / "dist" / "DocMind")).resolve()
QUESTION = "What does the harbour report say about the lighthouse?"


@pytest.fixture(scope="module")
def binary() -> Path:
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} does not exist: build it first with `make package`")
    return BINARY


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smoke")


@pytest.fixture(scope="module")
def env(sandbox: Path, tiny_model_dir: Path) -> dict[str, str]:
    """A clean environment: fresh HOME and data dir, offline, the tiny model, a browser that only records."""
    home = sandbox / "home"
    home.mkdir()
    tmp = sandbox / "tmp"
    tmp.mkdir()
    browser = sandbox / "record-browser"  # webbrowser runs $BROWSER: record the URL, open nothing
    browser.write_text(f"#!/bin/sh\necho \"$1\" >> {sandbox / 'opened.txt'}\n")
    browser.chmod(0o755)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "DOCMIND_DATA_DIR": str(sandbox / "data"),
        "DOCMIND_MODEL_PATH": str(tiny_model_dir),
        "HF_HUB_OFFLINE": "1",
        "DOCMIND_NO_DIALOG": "1",
        "BROWSER": str(browser),
    }


def run(binary: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_json(binary: Path, env: dict[str, str], *args: str) -> object:
    result = run(binary, env, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def opened_urls(sandbox: Path) -> list[str]:
    path = sandbox / "opened.txt"
    return path.read_text().split() if path.exists() else []


@pytest.fixture(scope="module")
def documents(sandbox: Path) -> Path:
    from reportlab.pdfgen import canvas

    folder = sandbox / "docs"
    folder.mkdir()
    (folder / "harbour.md").write_text(
        "# Harbour report\n\nThe lighthouse on the north pier was repainted red and white in May.\n"
    )
    (folder / "notes.txt").write_text("Meeting notes: the ferry timetable changes on the first of June.\n")
    (folder / "page.html").write_text(
        "<html><body><h1>Visitors</h1><p>The harbour museum opens at nine every morning.</p></body></html>"
    )
    pdf = canvas.Canvas(str(folder / "tides.pdf"))
    pdf.drawString(72, 720, "Tide tables: high water at the harbour is at 06:12 on Monday.")
    pdf.showPage()
    pdf.save()
    return folder


def test_version_unpacks_once_into_the_users_cache(binary: Path, env: dict[str, str]) -> None:
    first = run(binary, env, "--version")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith("DocMind ")
    assert "unpacking" in first.stderr  # a clean HOME: the first start unpacks
    runtime = Path(env["HOME"]) / ".cache" / "DocMind" / "runtime"
    builds = [p for p in runtime.iterdir() if (p / ".complete").is_file()]
    assert len(builds) == 1
    again = run(binary, env, "--version")
    assert again.stdout == first.stdout and "unpacking" not in again.stderr


def test_doctor_reports_wal_and_integrity_ok(binary: Path, env: dict[str, str]) -> None:
    report = run_json(binary, env, "doctor")
    assert report["journal_mode"] == "wal"
    assert report["integrity"] == "ok"
    assert report["data_dir"] == env["DOCMIND_DATA_DIR"]


def test_ingest_and_search_a_few_files(binary: Path, env: dict[str, str], documents: Path) -> None:
    report = run_json(binary, env, "ingest", str(documents))
    assert report["files_new"] == 4 and report["files_failed"] == [], report
    assert report["chunks_added"] >= 4
    hits = run_json(binary, env, "search", "lighthouse repainted")
    assert hits and hits[0]["source"] == str(documents / "harbour.md")
    again = run_json(binary, env, "ingest", str(documents))
    assert again["files_unchanged"] == 4 and again["embeddings_computed"] == 0


def test_ocr_reads_a_scanned_pdf_and_an_image_offline(binary: Path, env: dict[str, str], sandbox: Path) -> None:
    """The bundled RapidOCR models, ONNX Runtime and PDFium work in the built app, with no network."""
    from tests.cache.files import make_scanned_pdf, scanned_pages

    folder = sandbox / "scans"
    folder.mkdir()
    make_scanned_pdf(folder / "scan.pdf", ["Invoice for eleven brass lanterns.", "The courier arrives on Thursday."])
    scanned_pages(["Penguins huddle together in winter."])[0].save(folder / "note.png")
    report = run_json(binary, env, "ingest", str(folder))
    assert report["files_new"] == 2 and report["files_failed"] == [] and report["pages_failed"] == [], report
    hits = run_json(binary, env, "search", "courier arrives Thursday")
    assert (Path(hits[0]["source"]).name, hits[0]["page"]) == ("scan.pdf", 2)
    runtime = Path(env["HOME"]) / ".cache" / "DocMind" / "runtime"
    assert not list(runtime.rglob("libQt*")), "the GUI build of OpenCV was bundled, not opencv-python-headless"


def test_ask_answers_with_the_tiny_model(binary: Path, env: dict[str, str], documents: Path) -> None:
    answer = run_json(binary, env, "ask", QUESTION)
    assert isinstance(answer["answer"], str) and answer["answer"].strip()
    assert answer["session"]
    assert isinstance(answer["citations"], list)


@pytest.fixture(scope="module")
def server(binary: Path, env: dict[str, str], sandbox: Path, documents: Path) -> Iterator[AppProcess]:
    app = start_app([str(binary), "serve", "--no-browser"], env, sandbox / "serve.log")
    yield app
    app.stop()


def test_serve_serves_the_page_and_streams_a_chat(server: AppProcess) -> None:
    from gradio_client import Client

    assert urllib.request.urlopen(server.url, timeout=30).status == 200
    client = Client(server.url, verbose=False)
    job = client.submit(QUESTION, "", False, api_name="/chat")
    partials = list(job)
    final = job.result()
    assert final["done"] and not final["error"], final
    assert final["answer"].strip()
    answers = {p["answer"] for p in partials if p["answer"] and not p["done"]}
    assert len(answers) >= 2, "the answer arrived in one piece instead of streaming"


def test_a_second_launch_opens_the_running_app_instead_of_a_new_server(
    binary: Path, env: dict[str, str], sandbox: Path, server: AppProcess
) -> None:
    started = time.monotonic()
    double_click = start_app([str(binary)], env, sandbox / "second.log", timeout=120)
    assert double_click.process.wait(timeout=60) == 0
    assert f"already running at {server.url}" in double_click.output()
    assert opened_urls(sandbox) == [server.url]  # the browser opens on the running app
    assert time.monotonic() - started < 60
    assert server.process.poll() is None


def test_a_double_click_starts_the_app_and_opens_the_browser(
    binary: Path, env: dict[str, str], sandbox: Path, server: AppProcess
) -> None:
    server.stop()
    app = start_app([str(binary)], env, sandbox / "double-click.log")
    try:
        assert "already running" not in app.output()
        assert urllib.request.urlopen(app.url, timeout=30).status == 200
        deadline = time.monotonic() + 10
        while app.url not in opened_urls(sandbox) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened_urls(sandbox)[-1] == app.url
        assert (Path(env["DOCMIND_DATA_DIR"]) / "logs" / "docmind.log").read_text().count("running at") >= 2
    finally:
        app.stop()


def test_an_unwritable_data_dir_is_reported_before_the_ui(binary: Path, env: dict[str, str], sandbox: Path) -> None:
    blocker = sandbox / "a-file"
    blocker.write_text("x")
    result = run(binary, {**env, "DOCMIND_DATA_DIR": str(blocker / "data")}, timeout=120)
    assert result.returncode == 1
    assert "DocMind could not start: DocMind cannot write to its data folder" in result.stderr, result.stderr
