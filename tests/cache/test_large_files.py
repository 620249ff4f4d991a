"""Large files: per-page progress, cancel and kill -9 leave no partial document, and a rerun reuses every embedding.

Real PDFs, the real embedding model, a real SQLite file and, for kill -9, a real ``docmind ingest`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from docmind.cache import Ingestor
from docmind.config import Settings
from docmind.storage import open_database
from tests.cache.files import make_pdf

WORDS = ["harbour", "lantern", "copper", "meadow", "glacier", "violin", "orchard", "canyon", "falcon", "quarry"]


def big_pdf(path: Path, pages: int) -> Path:
    """A PDF of ``pages`` full pages (about 4,500 characters each), every sentence different."""
    texts = []
    for page in range(pages):
        sentences = [
            f"On page {page} line {line} the {WORDS[(page + line) % 10]} keeper counted {page * 97 + line} "
            f"{WORDS[(page * 3 + line) % 10]} stones."
            for line in range(60)
        ]
        texts.append(" ".join(sentences))
    return make_pdf(path, texts)


def cached_embeddings(settings: Settings) -> int:
    return open_database(settings.db_path).read("SELECT count(*) FROM kv WHERE collection LIKE 'embeddings/%'")[0][0]


def library_rows(settings: Settings) -> tuple[int, int]:
    db = open_database(settings.db_path)
    return db.read("SELECT count(*) FROM documents")[0][0], db.read("SELECT count(*) FROM chunks")[0][0]


def test_progress_is_per_page_and_a_cancelled_ingest_leaves_nothing_but_its_cache(
    settings: Settings, tmp_path: Path
) -> None:
    pdf = big_pdf(tmp_path / "manual.pdf", 40)
    cancel = threading.Event()
    events = []

    def progress(event) -> None:
        events.append(event)
        if event.status == "reading" and event.pages_done == 30:
            cancel.set()

    cancelled = Ingestor(settings).ingest([pdf], progress, cancel)

    reading = [event for event in events if event.status == "reading"]
    assert [event.pages_done for event in reading] == list(range(1, 31))
    assert {event.pages_total for event in reading} == {40}
    assert all(event.eta_seconds is not None and event.eta_seconds >= 0 for event in reading)
    assert any(event.status == "embedding" for event in events)  # windows are embedded while reading goes on
    assert cancelled.cancelled and cancelled.files_new == 0 and cancelled.chunks_added == 0
    assert library_rows(settings) == (0, 0)
    cached = cached_embeddings(settings)
    assert cached == cancelled.embeddings_computed > 0

    rerun = Ingestor(settings).ingest([pdf])

    assert rerun.files_new == 1 and not rerun.cancelled
    assert rerun.embeddings_reused == cached
    assert rerun.embeddings_computed + rerun.embeddings_reused == rerun.chunks_added == library_rows(settings)[1]
    pages = open_database(settings.db_path).read("SELECT DISTINCT page FROM chunks ORDER BY page")
    assert [row[0] for row in pages] == list(range(1, 41))


def test_a_killed_ingest_leaves_no_document_and_the_rerun_reuses_its_embeddings(
    settings: Settings, tmp_path: Path
) -> None:
    pdf = big_pdf(tmp_path / "archive.pdf", 40)
    child = subprocess.Popen([sys.executable, "-m", "docmind", "ingest", str(pdf), "--json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while (not settings.db_path.exists() or cached_embeddings(settings) < 32) and child.poll() is None:
            assert time.monotonic() < deadline, "the ingest never cached an embedding"
            time.sleep(0.05)
        assert child.poll() is None, "the ingest finished before it could be killed: make the PDF bigger"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert library_rows(settings) == (0, 0)
    cached = cached_embeddings(settings)

    rerun = subprocess.run([sys.executable, "-m", "docmind", "ingest", str(pdf), "--json"],
                           capture_output=True, text=True, timeout=600, env=os.environ.copy())

    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["files_new"] == 1 and report["embeddings_reused"] == cached
    assert report["embeddings_computed"] + report["embeddings_reused"] == report["chunks_added"]
    assert library_rows(settings) == (1, report["chunks_added"])
