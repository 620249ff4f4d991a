"""Stop adding files, in Debian Chromium against a real app: a user drops a long PDF and two notes, presses
"Stop adding files" while the PDF is being read, and sees every file marked as not added, with nothing of
them left in the library, the database or the library folder.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.cache.test_large_files import big_pdf
from tests.ui.conftest import Server, app_page

WAIT_MS = 120_000
PAGES = 80


def test_stop_adding_files_leaves_nothing_behind(browser, server: Server, tmp_path: Path, artifacts: Path) -> None:
    manual = big_pdf(tmp_path / "manual.pdf", PAGES)
    notes = [tmp_path / "notes-1.txt", tmp_path / "notes-2.txt"]
    for number, note in enumerate(notes, start=1):
        note.write_text(f"Note {number}: the Zorblax pump is serviced every {number + 2} months.\n")
    with app_page(browser, server.url, wait_ms=WAIT_MS) as page:
        _stop_while_the_pdf_is_read(page, server, [manual, *notes], artifacts)


def _stop_while_the_pdf_is_read(page, server: Server, files: list[Path], artifacts: Path) -> None:
    page.get_by_role("tab", name="Documents").click()

    page.locator("#docmind-upload input[type=file]").set_input_files([str(path) for path in files])
    summary = page.locator("#docmind-ingest-summary")
    summary.get_by_text(re.compile(rf"now manual\.pdf \((page \d+ of {PAGES}|embedding)")).wait_for()
    stop = page.get_by_role("button", name="Stop adding files")
    stop.wait_for(state="visible")
    stop.click()

    summary.get_by_text("Stopped: 3 files not added").wait_for()
    page.screenshot(path=artifacts / "stop-adding-files.png", full_page=True)
    assert "⚠" not in summary.inner_text() and "could be added" not in summary.inner_text()
    assert "Your library: 0 documents, 0 passages." in summary.inner_text()
    jobs = page.locator("#docmind-ingest-jobs").inner_text()
    assert jobs.count("stopped: not added") == 3 and all(name in jobs for name in ("manual.pdf", "notes-1.txt", "notes-2.txt"))
    stop.wait_for(state="hidden")
    library = page.locator("#docmind-library").inner_text()
    assert "manual.pdf" not in library and "notes-1.txt" not in library
    with sqlite3.connect(server.data_dir / "docmind.db") as db:
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    assert not [path for path in (server.data_dir / "library").rglob("*") if path.is_file()]  # no uploaded copy kept
