"""The upload folder and library bookkeeping on real files and a real SQLite database.

Stored uploads never overwrite each other, the same content is stored once, a reader never sees a
half-written copy, and removing a document removes its rows and DocMind's own copy (never the user's file).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from docmind.cache import (
    Ingestor,
    Searcher,
    discard_upload,
    document_chunks,
    library_dir,
    library_stats,
    list_documents,
    remove_document,
    store_upload,
)
from docmind.cache.library import remove_partial_uploads
from docmind.config import Settings
from docmind.storage import open_database
from tests.cache.conftest import run_cli


def _upload(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_same_name_different_content_keeps_both_under_their_own_name(tmp_path: Path) -> None:
    library = tmp_path / "library"
    first = store_upload(_upload(tmp_path / "a", "notes.txt", "the red notes"), library)
    second = store_upload(_upload(tmp_path / "b", "notes.txt", "the blue notes"), library)
    assert first.path != second.path
    assert first.path.name == second.path.name == "notes.txt"  # each keeps the user's name
    assert first.path.read_text() == "the red notes" and second.path.read_text() == "the blue notes"
    assert first.copied and second.copied
    assert sorted(p.name for p in library.rglob("*") if p.is_file()) == ["notes.txt", "notes.txt"]


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    library = tmp_path / "library"
    first = store_upload(_upload(tmp_path / "a", "report.txt", "quarterly figures"), library)
    again = store_upload(_upload(tmp_path / "b", "copy of report.txt", "quarterly figures"), library)
    assert again.path == first.path and not again.copied and again.sha256 == first.sha256
    assert again.name == "copy of report.txt"  # what the user uploaded, though the copy keeps the first name
    assert [p for p in library.rglob("*") if p.is_file()] == [first.path]


def test_a_copy_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """While a large upload is copied, the library folder never shows a file under a visible name."""
    library = tmp_path / "library"
    library.mkdir()
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (64 << 20))
    seen_sizes: set[int] = set()
    copying, stop = threading.Event(), threading.Event()

    def watch() -> None:
        copying.set()
        while not stop.is_set():
            for entry in library.rglob("big.txt"):
                try:
                    seen_sizes.add(entry.stat().st_size)
                except FileNotFoundError:
                    pass

    thread = threading.Thread(target=watch)
    thread.start()
    copying.wait()
    stored = store_upload(big, library)
    stop.set()
    thread.join()
    assert seen_sizes <= {64 << 20}
    assert stored.path.stat().st_size == 64 << 20
    assert [p.name for p in library.iterdir()] == [stored.path.parent.name]  # no temporary file left


def test_a_name_that_is_no_file_name_gets_a_plain_one(tmp_path: Path) -> None:
    stored = store_upload(_upload(tmp_path / "a", "real.txt", "text"), tmp_path / "library", name="..")
    assert stored.path.name == "upload" and stored.path.parent.parent == (tmp_path / "library").resolve()


def test_an_unreadable_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    library = tmp_path / "library"
    try:
        store_upload(tmp_path / "missing.txt", library)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a missing upload must raise")
    assert list(library.iterdir()) == []


def test_copies_left_by_a_killed_upload_are_cleaned_up_later(tmp_path: Path) -> None:
    library = tmp_path / "library"
    kept = store_upload(_upload(tmp_path / "a", "kept.txt", "a finished upload"), library)
    old, fresh = library / ".upload-old.part", library / ".upload-fresh.part"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"a copy still being written")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    assert remove_partial_uploads(library) == 1
    assert not old.exists() and fresh.exists() and kept.path.exists()


def test_discard_deletes_only_copies_docmind_owns(tmp_path: Path) -> None:
    library = tmp_path / "library"
    user_file = _upload(tmp_path / "mine", "keep.txt", "the user's own file")
    stored = store_upload(user_file, library)
    assert not discard_upload(user_file, library) and user_file.exists()
    assert discard_upload(stored.path, library)
    assert not stored.path.exists() and list(library.iterdir()) == []


def test_stats_chunk_counts_and_removal_share_one_implementation(settings: Settings, tmp_path: Path) -> None:
    db = open_database(settings.db_path)
    empty = library_stats(db)
    assert (empty.documents, empty.chunks) == (0, 0)
    library = library_dir(settings.data_dir)
    stored = store_upload(_upload(tmp_path / "up", "zorblax.txt", "The Zorblax warranty covers 3 years."), library)
    user_file = _upload(tmp_path / "mine", "garden.txt", "Tomatoes need full sun and deep watering.")
    report = Ingestor(settings, db).ingest([stored.path, user_file])
    assert report.files_new == 2
    stats = library_stats(db)
    assert (stats.documents, stats.chunks) == (2, 2) and stats.version > empty.version
    assert document_chunks(db, stored.path) == 1 and document_chunks(db, tmp_path / "nowhere.txt") == 0

    assert remove_document(db, stored.path, library) == 1
    assert not stored.path.exists()  # DocMind's copy goes with its document
    assert remove_document(db, user_file, library) == 1
    assert user_file.exists()  # the user's own file is never deleted
    after = library_stats(db)
    assert (after.documents, after.chunks) == (0, 0) and after.version > stats.version
    assert db.read("SELECT COUNT(*) FROM chunks_fts")[0][0] == 0
    assert Searcher(settings, db).search("Zorblax warranty", 5) == []


def test_cli_docs_remove_deletes_the_stored_upload_too(settings: Settings, tmp_path: Path) -> None:
    library = library_dir(settings.data_dir)
    stored = store_upload(_upload(tmp_path / "up", "zorblax.txt", "The Zorblax warranty covers 3 years."), library)
    Ingestor(settings).ingest([stored.path])
    env = {"DOCMIND_DATA_DIR": str(settings.data_dir)}
    listed = json.loads(run_cli("docs", "list", "--json", env=env).stdout)
    assert [(row["source"], row["chunks"]) for row in listed] == [(str(stored.path), 1)]
    removed = run_cli("docs", "remove", str(stored.path), "--json", env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"removed": [str(stored.path)]}
    assert not stored.path.exists() and list_documents(open_database(settings.db_path)) == []
