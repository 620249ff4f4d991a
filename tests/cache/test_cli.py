"""The ingest/search/docs commands in real processes: JSON contract, exit codes, cross-process cache,
concurrent ingests with a running reader, and ``kill -9`` in the middle of an ingest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cache.conftest import run_cli
from tests.cache.test_ingest import TOPICS, library, long_text

INGEST_KEYS = {"files_seen", "files_new", "files_changed", "files_unchanged", "files_failed", "chunks_added",
               "chunks_removed", "embeddings_computed", "seconds"}


def ingest_json(*paths: Path, env: dict[str, str] | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    result = run_cli("ingest", *map(str, paths), "--json", env=env)
    return json.loads(result.stdout), result


def consistent(db_path: Path) -> tuple[int, int]:
    """Check there are no orphan or duplicate chunks and FTS matches; return (documents, chunks)."""
    conn = sqlite3.connect(db_path)
    try:
        per_source = dict(conn.execute("SELECT source, COUNT(*) FROM chunks GROUP BY source").fetchall())
        documents = dict(conn.execute("SELECT source, chunks FROM documents").fetchall())
        assert per_source == {source: count for source, count in documents.items() if count}
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT source, page, text, metadata FROM chunks GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        return len(documents), sum(per_source.values())
    finally:
        conn.close()


def test_ingest_json_contract_unchanged_rerun_and_cross_process_cache(data_dir: Path, tmp_path: Path) -> None:
    folder = library(tmp_path / "docs")
    (folder / ".hidden.txt").write_text("hidden")
    (folder / "song.mp3").write_bytes(b"ID3")
    report, result = ingest_json(folder)
    assert result.returncode == 0, result.stderr
    assert INGEST_KEYS <= set(report)
    assert (report["files_seen"], report["files_new"], report["files_skipped"]) == (4, 4, 2)
    assert report["embeddings_computed"] > 0 and report["files_failed"] == []

    rerun = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "docmind", "ingest", str(folder), "--json"],
        capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    again = json.loads(rerun.stdout)
    assert (again["files_unchanged"], again["embeddings_computed"], again["chunks_added"]) == (4, 0, 0)
    imported = {line.rsplit("|", 1)[-1].strip() for line in rerun.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "transformers", "llama_index.core", "sentence_transformers"}

    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(folder / "essay.txt", copy / "same-essay.txt")
    cached, _ = ingest_json(copy)
    assert (cached["files_new"], cached["embeddings_computed"]) == (1, 0)
    assert cached["chunks_added"] > 0
    assert consistent(data_dir / "docmind.db")[0] == 5


def test_ingest_exits_1_when_nothing_could_be_ingested(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.pdf").write_bytes(b"not a pdf at all")
    report, result = ingest_json(tmp_path / "empty.txt", tmp_path / "bad.pdf", tmp_path / "missing.md")
    assert result.returncode == 1
    assert [Path(f["path"]).name for f in report["files_failed"]] == ["missing.md", "empty.txt", "bad.pdf"]
    assert result.stderr.strip().splitlines()[-1] == "docmind: error: nothing could be ingested (3 failed)"


def test_search_and_docs_commands(data_dir: Path, tmp_path: Path) -> None:
    folder = library(tmp_path / "docs")
    assert ingest_json(folder)[1].returncode == 0
    queries = tmp_path / "queries.txt"
    queries.write_text("How do bees tell each other where flowers are?\n\nviolin strings\n")
    one = run_cli("search", "waggle dance of honey bees", "-k", "4", "--json")
    many = run_cli("search", "--queries", str(queries), "-k", "3", "--json")
    assert one.returncode == many.returncode == 0, one.stderr + many.stderr
    hits = json.loads(one.stdout)
    assert [set(hit) for hit in hits] == [{"rank", "score", "source", "page", "text"}] * 4
    assert [hit["rank"] for hit in hits] == [1, 2, 3, 4] and "waggle dance" in hits[0]["text"]
    pdf_pages = lambda found: [hit["page"] for hit in found if hit["source"] == str(folder / "guide.pdf")]  # noqa: E731
    assert pdf_pages(hits)[0] == 2
    lists = json.loads(many.stdout)
    assert [len(found) for found in lists] == [3, 3]
    assert pdf_pages(lists[0])[0] == 2 and pdf_pages(lists[1])[0] == 3

    listed = json.loads(run_cli("docs", "list", "--json").stdout)
    assert [set(doc) for doc in listed] == [{"source", "sha256", "chunks", "ingested_at"}] * 4
    removed = run_cli("docs", "remove", str(folder / "guide.pdf"), "--json")
    assert json.loads(removed.stdout) == {"removed": [str(folder / "guide.pdf")]}
    missing = run_cli("docs", "remove", str(folder / "guide.pdf"))
    assert missing.returncode == 1 and "not in the library" in missing.stderr
    assert consistent(data_dir / "docmind.db")[0] == 3


READER = """
import sys, time
from docmind.cache import Searcher, list_documents
searcher = Searcher()
deadline = time.time() + float(sys.argv[1])
searches = 0
while time.time() < deadline:
    searcher.search("volcano magma", 3)
    list_documents(searcher.db)
    searches += 1
print(searches)
"""


def test_two_ingests_and_a_reader_at_once_duplicate_nothing(data_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for index, folder in enumerate((first, second)):
        folder.mkdir()
        for n in range(4):
            (folder / f"doc{n}.txt").write_text(long_text(index * 4 + n, paragraphs=1), encoding="utf-8")
    shared = tmp_path / "shared.txt"
    shared.write_text(TOPICS[0] * 3)
    env = os.environ.copy()
    reader = subprocess.Popen([sys.executable, "-c", READER, "25"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    ingests = [
        subprocess.Popen([sys.executable, "-m", "docmind", "ingest", str(folder), str(shared), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for folder in (first, second)
    ]
    outputs = [process.communicate(timeout=300) for process in ingests]
    assert [process.returncode for process in ingests] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["files_new"] + r["files_changed"] + r["files_unchanged"] for r in reports) == 10
    reader_out, reader_err = reader.communicate(timeout=120)
    assert reader.returncode == 0, reader_err
    assert int(reader_out) > 0
    assert consistent(data_dir / "docmind.db")[0] == 9


def test_kill_9_mid_ingest_then_rerun_completes_cleanly(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(40):  # about 100,000 characters: two embedding groups, so the kill lands between commits
        (folder / f"doc{n:02}.txt").write_text(long_text(n, paragraphs=2) + f" Unique marker {n}.", encoding="utf-8")
    db_path = data_dir / "docmind.db"
    process = subprocess.Popen([sys.executable, "-m", "docmind", "ingest", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    committed = 0
    deadline = time.time() + 240
    while time.time() < deadline and committed < 3:
        time.sleep(0.05)
        if db_path.exists():
            try:
                conn = sqlite3.connect(db_path, timeout=5)
                committed = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                pass  # schema not created yet
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    documents_at_kill, _ = consistent(db_path)
    if documents_at_kill >= 40:
        pytest.fail("the ingest finished before it could be killed; give it more files")
    assert documents_at_kill >= 3

    report, result = ingest_json(folder)
    assert result.returncode == 0, result.stderr
    assert report["files_unchanged"] == documents_at_kill
    assert report["files_new"] == 40 - documents_at_kill
    documents, chunks = consistent(db_path)
    assert documents == 40 and chunks == sum(d["chunks"] for d in json.loads(run_cli("docs", "list", "--json").stdout))
