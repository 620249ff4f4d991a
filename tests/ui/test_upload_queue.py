"""The upload queue hands each upload batch to the real ingestor in one call, with a status per file.

A spy wraps the real ``Ingestor.ingest`` only to count its calls and to look at the jobs while it runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docmind.cache.ingest import Ingestor
from docmind.config import load_settings
from docmind.storage import open_database
from docmind.ui.ingest_queue import CANCELLED, DONE, FAILED, WAITING, WORKING, IngestQueue


def _wait(jobs: list, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not all(job.finished for job in jobs):
        assert time.monotonic() < deadline, [(job.name, job.detail) for job in jobs]
        time.sleep(0.05)


def test_one_ingest_call_per_batch_and_one_bad_file_stops_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=data_dir)
    db = open_database(settings.db_path)
    queue = IngestQueue(settings, db, data_dir / "library")
    calls: list[list[str]] = []
    states_seen: list[tuple[str, ...]] = []
    real_ingest = Ingestor.ingest

    def spy(self: Ingestor, paths: list, progress=None, cancel=None):
        calls.append([Path(p).name for p in paths])

        def watch(event) -> None:
            progress(event)
            states_seen.append(tuple(job.state for job in queue.jobs()))

        return real_ingest(self, paths, watch, cancel)

    monkeypatch.setattr(Ingestor, "ingest", spy)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "garden.txt").write_text("Tomatoes need full sun and deep watering twice a week.")
    (uploads / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    (uploads / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at eighty degrees.\n")
    jobs = queue.submit([uploads / "garden.txt", uploads / "broken.pdf", uploads / "tea.md"])
    _wait(jobs)

    assert calls == [["garden.txt", "broken.pdf", "tea.md"]]  # the whole batch, in one call
    assert [job.state for job in jobs] == [DONE, FAILED, DONE]
    assert jobs[0].detail == "added: 1 passage" and jobs[2].detail == "added: 1 passage"
    assert jobs[1].detail.startswith("failed:") and "PDF" in jobs[1].detail
    assert not jobs[1].path.exists()  # the bad file's copy is not kept
    assert (WORKING, WAITING, WAITING) in states_seen  # the first file was read while the others waited
    assert any(states[0] == WORKING and states[2] == WORKING for states in states_seen)

    later = queue.submit([uploads / "tea.md"])
    _wait(later)
    assert len(calls) == 2 and later[0].detail == "already in the library (1 passage)"


def test_stop_adding_shows_pages_then_leaves_out_the_file_and_its_copy(data_dir: Path, tmp_path: Path) -> None:
    from tests.cache.test_large_files import big_pdf

    settings = load_settings(data_dir=data_dir)
    db = open_database(settings.db_path)
    queue = IngestQueue(settings, db, data_dir / "library")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    big, waiting = queue.submit([big_pdf(uploads / "manual.pdf", 60)])[0], None
    deadline = time.monotonic() + 300
    while not big.detail.startswith("page "):
        assert time.monotonic() < deadline and not big.finished, big.detail
        time.sleep(0.01)
    (uploads / "later.txt").write_text("Uploaded while the manual was being added.")
    waiting = queue.submit([uploads / "later.txt"])[0]

    assert queue.cancel() == 2
    _wait([big, waiting])

    assert (big.state, big.detail) == (FAILED, CANCELLED) and (waiting.state, waiting.detail) == (FAILED, CANCELLED)
    assert not big.path.exists() and not waiting.path.exists()
    assert db.read("SELECT count(*) FROM documents")[0][0] == 0
    assert db.read("SELECT count(*) FROM chunks")[0][0] == 0
