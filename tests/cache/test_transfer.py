"""Export and import across two data dirs, each command in its own process: an exact restore into an
empty data dir, a merge into a used one, an export taken while another process writes, and damaged
files refused with nothing changed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from docmind.cache.collections import add_to_collection, create_collection, resolve_scope, set_session_scope
from docmind.cache.ingest import Ingestor
from docmind.cache.library import library_dir, store_upload
from docmind.config import load_settings
from docmind.storage import open_database
from docmind.storage.sessions import ChatLog, StoredMessage
from tests.cache.conftest import run_cli
from tests.cache.test_ingest import TOPICS, long_text

EXPORT_KEYS = {"file", "documents", "chunks", "sessions", "messages", "bytes"}
IMPORT_KEYS = {"documents_added", "documents_skipped", "sessions_added", "sessions_renamed"}


def build_source(data_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """A data dir with an uploaded copy, the user's own files, collections, a watched folder and two chats."""
    settings = load_settings(data_dir=data_dir)
    own = tmp_path / "own"
    own.mkdir()
    (own / "essay.txt").write_text(long_text(0), encoding="utf-8")
    (own / "same.txt").write_text(TOPICS[1], encoding="utf-8")
    (own / "copy-of-same.txt").write_text(TOPICS[1], encoding="utf-8")  # equal content at two paths
    upload = tmp_path / "upload" / "violin notes.txt"
    upload.parent.mkdir()
    upload.write_text(TOPICS[2] + " Rosin keeps the bow gripping the strings.", encoding="utf-8")
    stored = store_upload(upload, library_dir(data_dir)).path
    report = Ingestor(settings).ingest([own, stored])
    assert report.files_new == 4, report.files_failed
    db = open_database(settings.db_path)
    create_collection(db, "Music")
    create_collection(db, "Essays")
    add_to_collection(db, "Music", [stored])
    add_to_collection(db, "Essays", [own])
    db.execute("INSERT INTO watched_folders (path, collection_id, added_at) VALUES (?, 2, '2026-12-04')", (str(own),))
    log = ChatLog(db)
    first = log.create_session("Violins")
    log.append(first, StoredMessage("user", "How is a violin tuned?"),
               StoredMessage("assistant", "In fifths [1].", thinking="The passage says fifths.",
                             extra={"citations": [{"number": 1, "source": str(stored), "page": None, "text": "x"}]}))
    set_session_scope(db, first, resolve_scope(db, ["Music"]))
    second = log.create_session("Bees")
    log.append(second, StoredMessage("user", "How do bees talk?"), StoredMessage("assistant", "They dance."))
    return {"own": own, "stored": stored}


def contents(db_path: Path, library: Path) -> dict:
    """Everything the user would notice, with library copies named relative to their library."""
    conn = sqlite3.connect(db_path)

    def name(source: str) -> str:
        return "LIBRARY/" + str(Path(source).relative_to(library)) if source.startswith(str(library)) else source

    try:
        return {
            "documents": sorted((name(r[0]), r[1], r[2]) for r in conn.execute("SELECT source, sha256, chunks FROM documents")),
            "chunks": sorted((name(r[0]), r[1], r[2]) for r in conn.execute("SELECT source, page, text FROM chunks")),
            "collections": sorted((r[0], name(r[1] or "")) for r in conn.execute(
                "SELECT c.name, m.source FROM collections c LEFT JOIN collection_documents m ON m.collection_id = c.id")),
            "watched": conn.execute("SELECT w.path, c.name FROM watched_folders w LEFT JOIN collections c"
                                    " ON c.id = w.collection_id").fetchall(),
            "sessions": conn.execute("SELECT id, title, created_at, updated_at FROM sessions ORDER BY id").fetchall(),
            "messages": conn.execute("SELECT session_id, role, content, thinking, extra, tokens, status, created_at"
                                     " FROM messages ORDER BY session_id, id").fetchall(),
            "scopes": conn.execute("SELECT s.session_id, c.name FROM session_collections s JOIN collections c"
                                   " ON c.id = s.collection_id").fetchall(),
            "scope_changes": conn.execute("SELECT session_id, collections FROM session_scope_changes").fetchall(),
        }
    finally:
        conn.close()


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("--data-dir", str(data_dir), *args)


def test_export_then_import_into_an_empty_data_dir_restores_everything(tmp_path: Path, embed_model) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    files = build_source(source, tmp_path)
    export = tmp_path / "everything.zip"
    exported = cli(source, "export", str(export), "--json")
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert set(report) == EXPORT_KEYS
    assert (report["documents"], report["sessions"], report["messages"]) == (4, 2, 4)
    assert report["bytes"] == export.stat().st_size

    imported = cli(target, "import", str(export), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"documents_added": 4, "documents_skipped": 0, "sessions_added": 2,
                                           "sessions_renamed": 0}
    before = contents(source / "docmind.db", library_dir(source).resolve())
    after = contents(target / "docmind.db", library_dir(target).resolve())
    assert after == before
    moved = library_dir(target).resolve() / files["stored"].relative_to(library_dir(source).resolve())
    assert moved.read_bytes() == files["stored"].read_bytes()
    found = json.loads(cli(target, "search", "rosin on the bow", "--json").stdout)
    assert found[0]["source"] == str(moved)  # the restored copy is what citations open

    merged = cli(target, "import", str(export), "--json")  # again: a merge into a used data dir
    assert json.loads(merged.stdout) == {"documents_added": 0, "documents_skipped": 4, "sessions_added": 2,
                                         "sessions_renamed": 2}
    twice = contents(target / "docmind.db", library_dir(target).resolve())
    assert twice["documents"] == before["documents"] and twice["collections"] == before["collections"]
    assert len(twice["sessions"]) == 4 and len(twice["messages"]) == 8
    assert sorted(title for _, title, *_ in twice["sessions"]) == ["Bees", "Bees", "Violins", "Violins"]


def test_damaged_exports_are_refused_and_change_nothing(tmp_path: Path, embed_model) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    build_source(source, tmp_path)
    export = tmp_path / "everything.zip"
    assert cli(source, "export", str(export)).returncode == 0
    cli(target, "collections", "create", "Mine")
    before = contents(target / "docmind.db", library_dir(target).resolve())

    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(export.read_bytes()[: export.stat().st_size * 2 // 3])
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(export) as original, zipfile.ZipFile(tampered, "w") as copy:
        for item in original.infolist():
            data = original.read(item)
            if item.filename.startswith("library/"):
                data = data.replace(b"Rosin", b"Resin")
            copy.writestr(item, data)
    not_an_export = tmp_path / "notes.zip"
    with zipfile.ZipFile(not_an_export, "w") as other:
        other.writestr("notes.txt", "hello")
    for bad, message in ((truncated, "damaged or incomplete"), (tampered, "damaged or incomplete"),
                         (not_an_export, "not a DocMind export"), (tmp_path / "missing.zip", "does not exist")):
        result = cli(target, "import", str(bad), "--json")
        assert result.returncode == 1 and result.stdout == ""
        assert message in result.stderr and result.stderr.count("\n") == 1
        assert contents(target / "docmind.db", library_dir(target).resolve()) == before
    assert not any(library_dir(target).rglob("*.txt"))


WRITER = """
import sys
from docmind.storage.sessions import ChatLog, StoredMessage
log = ChatLog(sys.argv[1])
session = log.create_session("busy")
print("ready", flush=True)
n = 0
while True:
    n += 1
    log.append(session, StoredMessage("user", f"question {n}"), StoredMessage("assistant", f"answer {n}"))
"""


def test_export_is_consistent_while_another_process_writes(tmp_path: Path, embed_model) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    build_source(source, tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source / "docmind.db")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        export = tmp_path / "busy.zip"
        exported = cli(source, "export", str(export), "--json")
        assert exported.returncode == 0, exported.stderr
    finally:
        writer.kill()
        writer.wait()
    report = json.loads(exported.stdout)
    imported = cli(target, "import", str(export), "--json")  # checks the manifest's counts and the integrity
    assert imported.returncode == 0, imported.stderr
    conn = sqlite3.connect(target / "docmind.db")
    messages = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    pairs = conn.execute("SELECT COUNT(*) FROM messages m JOIN sessions s ON s.id = m.session_id"
                         " WHERE s.title = 'busy' AND m.role = 'user'").fetchone()[0]
    assert messages == report["messages"] and messages == 4 + 2 * pairs  # whole turns only


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt"])
def test_an_export_naming_files_outside_its_folder_is_refused(tmp_path: Path, name: str) -> None:
    source = tmp_path / "source"
    source.mkdir()
    export = tmp_path / "everything.zip"
    assert cli(source, "export", str(export)).returncode == 0
    with zipfile.ZipFile(export) as original:
        manifest = json.loads(original.read("manifest.json"))
        database = original.read("docmind.db")
    manifest["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("docmind.db", database)
        archive.writestr(name, "x")
        archive.writestr("manifest.json", json.dumps(manifest))
    result = cli(tmp_path / "target", "import", str(evil))
    assert result.returncode == 1 and "unexpected file" in result.stderr
    assert not (tmp_path / "evil.txt").exists()
