"""The Documents tab's summary line describes the upload in progress (or the latest one), not every upload."""

from __future__ import annotations

from pathlib import Path

from docmind.ui.documents import summary_markdown
from docmind.ui.ingest_queue import DONE, FAILED, WORKING, FileJob


def _job(number: int, batch: int, state: str, detail: str) -> FileJob:
    return FileJob(number, f"file{number}.txt", Path(f"/library/file{number}.txt"), batch, state, detail)


def test_a_finished_upload_is_described_alone() -> None:
    jobs = [_job(1, 1, DONE, "added: 3 chunks"), _job(2, 1, FAILED, "failed: not a PDF"),
            _job(3, 2, DONE, "added: 1 chunk"), _job(4, 2, DONE, "added: 2 chunks")]
    summary = summary_markdown(jobs, documents=3, chunks=6)
    assert summary.startswith("✓ All 2 files of this upload processed. You can ask about them in the Chat tab.")
    assert "failed" not in summary
    assert summary.endswith("**Your library:** 3 documents, 6 chunks.")


def test_uploads_still_running_are_counted_together() -> None:
    jobs = [_job(1, 1, DONE, "added: 3 chunks"), _job(2, 2, DONE, "added: 1 chunk"),
            _job(3, 2, WORKING, "embedding: 4 chunks"), _job(4, 3, "waiting", "waiting")]
    summary = summary_markdown(jobs, documents=2, chunks=4)
    assert summary.startswith("⟳ Adding documents: 1 of 3 done · now **file3.txt** (embedding: 4 chunks)")


def test_one_failed_file_says_why() -> None:
    summary = summary_markdown([_job(1, 1, FAILED, "failed: not a readable PDF")], documents=0, chunks=0)
    assert summary == "⚠ **file1.txt**: failed: not a readable PDF.\n\n**Your library:** 0 documents, 0 chunks."


def test_before_any_upload_only_the_library_is_described() -> None:
    assert summary_markdown([], documents=1, chunks=1) == "**Your library:** 1 document, 1 chunk."
