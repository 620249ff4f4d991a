"""Ingestion with real files, the real MiniLM model and a real SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docmind.cache import Ingestor, Searcher, list_documents, remove_documents
from docmind.cache.embedding_cache import cache_collection, prune_embedding_cache
from docmind.cache.embeddings import default_embed_model_path
from docmind.config import Settings
from docmind.storage import open_database
from tests.cache.files import make_docx, make_html, make_pdf
from tests.storage.helpers import AS_UNPRIVILEGED, REPO

TOPICS = [
    "Volcanoes form where magma rises through cracks in the crust of the earth.",
    "Honey bees communicate the direction of flowers with a waggle dance.",
    "The violin has four strings tuned in perfect fifths and is played with a bow.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria in the starter.",
    "Glaciers carve U-shaped valleys as they slowly slide downhill under their own weight.",
    "Chess openings such as the Sicilian Defence aim to control the centre of the board.",
]


def long_text(seed: int, paragraphs: int = 6) -> str:
    """Several paragraphs, each long enough to be its own chunk."""
    return "\n\n".join(
        " ".join(f"{TOPICS[(seed + p) % len(TOPICS)]} Note {seed}-{p}-{s}." for s in range(12))
        for p in range(paragraphs)
    )


def library(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_pdf(folder / "guide.pdf", [TOPICS[0], TOPICS[1], TOPICS[2]])
    make_docx(folder / "notes.docx", [TOPICS[3], TOPICS[4]])
    make_html(folder / "page.html", "Chess", TOPICS[5])
    (folder / "essay.txt").write_text(long_text(0), encoding="utf-8")
    return folder


def chunk_rows(settings: Settings) -> list[tuple]:
    return [tuple(r) for r in open_database(settings.db_path).read("SELECT source, page, text FROM chunks")]


def test_ingest_then_unchanged_reingest_computes_nothing(settings: Settings, tmp_path: Path) -> None:
    folder = library(tmp_path / "docs")
    events = []
    report = Ingestor(settings).ingest([folder], events.append)
    assert (report.files_seen, report.files_new, report.files_failed) == (4, 4, [])
    assert report.chunks_added == len(chunk_rows(settings)) > 4
    assert 0 < report.embeddings_computed <= report.chunks_added
    assert events[-1].status == "done" and events[-1].files_done == events[-1].files_total == 4
    assert {e.current_file for e in events if e.current_file} == {str(p) for p in folder.iterdir()}

    again = Ingestor(settings).ingest([folder])
    assert (again.files_unchanged, again.files_new, again.files_changed) == (4, 0, 0)
    assert (again.embeddings_computed, again.chunks_added, again.chunks_removed) == (0, 0, 0)
    docs = list_documents(open_database(settings.db_path))
    assert [Path(d.source).name for d in docs] == ["essay.txt", "guide.pdf", "notes.docx", "page.html"]
    assert sum(d.chunks for d in docs) == len(chunk_rows(settings))


def test_chunks_keep_source_page_and_character_span(settings: Settings, tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "guide.pdf", TOPICS[:3])
    Ingestor(settings).ingest([pdf])
    store = Searcher(settings).store
    nodes = store.get_nodes()
    assert sorted((n.metadata["source"], n.metadata["page"]) for n in nodes) == [(str(pdf), 1), (str(pdf), 2), (str(pdf), 3)]
    for node in nodes:
        assert node.metadata["char_start"] == 0 and node.metadata["char_end"] == len(node.text)


def test_changed_file_reembeds_only_changed_chunks(settings: Settings, tmp_path: Path) -> None:
    essay = tmp_path / "essay.txt"
    essay.write_text(long_text(0), encoding="utf-8")
    first = Ingestor(settings).ingest([essay])
    assert first.chunks_added >= 4

    paragraphs = long_text(0).split("\n\n")
    paragraphs[-1] = "A brand new closing paragraph about the zeppelin hangar at Friedrichshafen. " * 6
    essay.write_text("\n\n".join(paragraphs), encoding="utf-8")
    second = Ingestor(settings).ingest([essay])
    assert (second.files_changed, second.files_new) == (1, 0)
    assert 1 <= second.embeddings_computed < first.embeddings_computed
    assert second.embeddings_computed == second.chunks_added
    assert second.chunks_removed >= 1
    texts = [row[2] for row in chunk_rows(settings)]
    assert any("zeppelin" in t for t in texts) and len(texts) == len(set(texts))
    db = open_database(settings.db_path)
    assert db.read("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'zeppelin'")[0][0] >= 1
    removed_words = set(long_text(0).split("\n\n")[-1].split()) - set("\n\n".join(paragraphs).split())
    for word in removed_words:
        assert db.read("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{word}"',))[0][0] == 0


def test_same_text_in_another_file_reuses_embeddings(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "essay.txt").write_text(long_text(1), encoding="utf-8")
    shutil.copy(tmp_path / "a" / "essay.txt", tmp_path / "b" / "copy.txt")
    first = Ingestor(settings).ingest([tmp_path / "a"])
    second = Ingestor(settings).ingest([tmp_path / "b"])
    assert first.embeddings_computed > 0
    assert (second.files_new, second.embeddings_computed, second.chunks_added) == (1, 0, first.chunks_added)


def test_the_embedding_cache_forgets_the_oldest_texts_that_left_the_library(settings: Settings, tmp_path: Path) -> None:
    essay = tmp_path / "essay.txt"
    db = open_database(settings.db_path)
    ingestor = Ingestor(settings)
    collection = cache_collection(ingestor.identity)
    cached = lambda: db.read("SELECT count(*) FROM kv WHERE collection = ?", (collection,))[0][0]  # noqa: E731
    for version in range(3):  # each version replaces every chunk: the old ones become leftovers
        essay.write_text(long_text(version * 7), encoding="utf-8")
        ingestor.ingest([essay])
    live = len(chunk_rows(settings))
    assert cached() == 3 * live  # under the spare allowance nothing was pruned
    db.write(lambda conn: conn.execute("INSERT INTO kv VALUES ('embeddings/an-old-model', 'k', '{}')"))

    assert prune_embedding_cache(db, ingestor.identity, spare=0) == live + 1  # the oldest version, the old model
    assert cached() == 2 * live
    assert db.read("SELECT count(*) FROM kv WHERE collection = 'embeddings/an-old-model'")[0][0] == 0
    assert prune_embedding_cache(db, ingestor.identity, spare=0) == 0
    essay.write_text(long_text(7), encoding="utf-8")  # back to the previous version: still cached
    assert Ingestor(settings).ingest([essay]).embeddings_computed == 0
    essay.write_text(long_text(14), encoding="utf-8")  # and the current one was never forgotten
    assert Ingestor(settings).ingest([essay]).embeddings_computed == 0


def test_remove_document_deletes_its_chunks_and_fts_rows(settings: Settings, tmp_path: Path) -> None:
    folder = library(tmp_path / "docs")
    Ingestor(settings).ingest([folder])
    db = open_database(settings.db_path)
    assert remove_documents(db, folder / "essay.txt") == [str(folder / "essay.txt")]
    assert all(row[0] != str(folder / "essay.txt") for row in chunk_rows(settings))
    assert db.read("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'Note'")[0][0] == 0
    assert sorted(remove_documents(db, folder)) == sorted(str(folder / n) for n in ("guide.pdf", "notes.docx", "page.html"))
    assert db.read("SELECT COUNT(*) FROM chunks")[0][0] == 0
    assert db.read("SELECT COUNT(*) FROM chunks_fts")[0][0] == 0
    assert list_documents(db) == []


def test_bad_inputs_are_reported_and_the_rest_ingested(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text(TOPICS[0], encoding="utf-8")
    (folder / "latin1.txt").write_bytes("Crème brûlée: déjà vu à la française. ".encode("latin-1") * 10)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n garbage without an end")
    make_pdf(folder / "locked.pdf", ["secret"], password="pw")
    (folder / "empty.md").write_bytes(b"")
    (folder / "random.txt").write_bytes(os.urandom(2048))
    (folder / "huge.txt").write_text("big " * 400_000)  # 1.6 MB, over the 1 MB limit below
    os.symlink(folder / "loop.txt", folder / "loop.txt")
    os.mkfifo(folder / "pipe.txt")
    report = Ingestor(settings.model_copy(update={"max_file_size_mb": 1.0})).ingest([folder, tmp_path / "missing"])
    reasons = {Path(f.path).name: f.error for f in report.files_failed}
    assert set(reasons) == {"corrupt.pdf", "locked.pdf", "empty.md", "random.txt", "huge.txt", "loop.txt",
                            "pipe.txt", "missing"}
    assert reasons["corrupt.pdf"].startswith("not a readable PDF")
    assert reasons["locked.pdf"].startswith("encrypted PDF")
    assert reasons["empty.md"] == "empty file (0 bytes)"
    assert reasons["random.txt"].startswith("binary data")
    assert "over the 1 MB limit" in reasons["huge.txt"] and "DOCMIND_MAX_FILE_SIZE_MB" in reasons["huge.txt"]
    assert reasons["loop.txt"].startswith("symlink loop")
    assert reasons["pipe.txt"].startswith("not a regular file")
    assert reasons["missing"] == "no such file or folder"
    assert all("\n" not in reason for reason in reasons.values())
    assert (report.files_new, report.succeeded) == (2, True)
    texts = " ".join(row[2] for row in chunk_rows(settings))
    assert "Crème brûlée: déjà vu à la française." in texts


def test_unreadable_permissions_are_reported(data_dir: Path, tmp_path: Path) -> None:
    """A real `docmind ingest` process without root's file-mode override (it drops its capabilities)."""
    locked = tmp_path / "locked.txt"
    locked.write_text("private")
    locked.chmod(0)
    script = AS_UNPRIVILEGED + "from docmind.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    child = subprocess.run(
        [sys.executable, "-c", "import sys\n" + script, "--data-dir", str(data_dir), "ingest", str(locked), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    report = json.loads(child.stdout)
    assert report["files_failed"] == [
        {"path": str(locked), "error": "permission denied: DocMind may not read this file"}
    ]
    assert child.returncode == 1


def test_changing_the_embedding_model_reembeds_everything(settings: Settings, tmp_path: Path) -> None:
    folder = library(tmp_path / "docs")
    first = Ingestor(settings).ingest([folder])
    other_model = tmp_path / "other-model"
    shutil.copytree(default_embed_model_path(), other_model, symlinks=True,
                    copy_function=lambda src, dst: os.symlink(src, dst))
    config = other_model / "config.json"
    text = config.read_text()
    config.unlink()
    config.write_text(text.replace("{", '{"docmind_test_variant": 1,', 1))

    changed = settings.model_copy(update={"embed_model_path": other_model})
    stale_hits = Searcher(changed).search("magma rises through the crust", 3)
    assert stale_hits and all(hit.text for hit in stale_hits)  # keywords only until the library is re-embedded
    assert Searcher(changed).search("magma rises through the crust", 3, mode="vector") == []
    second = Ingestor(changed).ingest([folder / "essay.txt"])
    assert any("embedding model changed" in notice for notice in second.notices)
    assert second.files_changed == 4  # every document in the library, not only the path given
    assert second.embeddings_computed == first.embeddings_computed
    models = {d[0] for d in open_database(settings.db_path).read("SELECT embed_model FROM documents")}
    assert models == {Ingestor(changed).identity} != {Ingestor(settings).identity}
    assert Searcher(changed).search("magma rises through the crust", 3, mode="vector")
