"""The Documents tab's summary line describes the upload in progress (or the latest one), not every upload."""

from __future__ import annotations

from pathlib import Path

from docmind.ui.documents import summary_markdown
from docmind.ui.ingest_queue import CANCELLED, DONE, FAILED, WORKING, FileJob


def _job(number: int, batch: int, state: str, detail: str) -> FileJob:
    return FileJob(number, f"file{number}.txt", Path(f"/library/file{number}.txt"), batch, state, detail)


def test_a_finished_upload_is_described_alone() -> None:
    jobs = [_job(1, 1, DONE, "added: 3 passages"), _job(2, 1, FAILED, "failed: not a PDF"),
            _job(3, 2, DONE, "added: 1 passage"), _job(4, 2, DONE, "added: 2 passages")]
    summary = summary_markdown(jobs, documents=3, passages=6)
    assert summary.startswith("✓ All 2 files added. You can ask about them in the Chat tab.")
    assert "failed" not in summary
    assert summary.endswith("**Your library:** 3 documents, 6 passages.")


def test_uploads_still_running_are_counted_together() -> None:
    jobs = [_job(1, 1, DONE, "added: 3 passages"), _job(2, 2, DONE, "added: 1 passage"),
            _job(3, 2, WORKING, "embedding: 4 passages"), _job(4, 3, "waiting", "waiting")]
    summary = summary_markdown(jobs, documents=2, passages=4)
    assert summary.startswith("⟳ Adding documents: 1 of 3 done · now **file3.txt** (embedding: 4 passages)")


def test_one_failed_file_says_why() -> None:
    summary = summary_markdown([_job(1, 1, FAILED, "failed: not a readable PDF")], documents=0, passages=0)
    assert "⚠ **file1.txt**: failed: not a readable PDF." in summary and 'role="alert"' in summary
    assert summary.endswith("**Your library:** 0 documents, 0 passages.")


def test_an_upload_where_every_file_failed_is_a_warning_not_a_tick() -> None:
    jobs = [_job(n, 1, FAILED, "failed: not a readable PDF") for n in (1, 2, 3)]
    summary = summary_markdown(jobs, documents=0, passages=0)
    assert "✓" not in summary and 'class="docmind-warning"' in summary
    assert "None of the 3 files could be added" in summary and "Chat tab" not in summary


def test_a_partly_failed_upload_counts_added_and_failed() -> None:
    jobs = [_job(1, 1, DONE, "added: 2 passages"), _job(2, 1, FAILED, "failed: empty"),
            _job(3, 1, FAILED, "failed: empty")]
    summary = summary_markdown(jobs, documents=1, passages=2)
    assert "1 file of 3 added, 2 failed" in summary and 'role="alert"' in summary
    assert "You can ask about it in the Chat tab." in summary


def test_files_the_user_stopped_are_counted_as_stopped_not_failed() -> None:
    jobs = [_job(1, 1, DONE, "added: 2 passages"), _job(2, 1, FAILED, CANCELLED), _job(3, 1, FAILED, CANCELLED)]
    summary = summary_markdown(jobs, documents=1, passages=2)
    assert summary.startswith("**Stopped: 2 files not added** (add them again to finish), 1 added.")
    assert "⚠" not in summary and 'role="alert"' not in summary and "You can ask about it in the Chat tab." in summary
    with_failure = summary_markdown([_job(1, 1, FAILED, "failed: empty"), _job(2, 1, FAILED, CANCELLED)], 0, 0)
    assert "Stopped: 1 file not added** (add it again to finish), 1 failed" in with_failure and 'role="alert"' in with_failure


def test_before_any_upload_only_the_library_is_described() -> None:
    assert summary_markdown([], documents=1, passages=1) == "**Your library:** 1 document, 1 passage."
