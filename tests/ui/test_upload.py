"""Uploads through the real ``/upload`` endpoint of a running app never overwrite one another.

Two different files with one name both stay searchable; the same content uploaded again is recognised
by its hash and stored once. Searches run through ``docmind search`` on the app's own data dir.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.ui.conftest import Server

RED = "The Zorblax warranty covers repairs for three years."
BLUE = "Descale the Quillon espresso pump every month with citric acid."


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url, verbose=False)


def _file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def _upload(client: Client, *paths: Path) -> tuple[dict[str, str], list[list]]:
    """Upload ``paths`` as one batch; the status of each file of this batch (by row) and the library rows."""
    jobs, library, _ = client.predict([handle_file(str(p)) for p in paths], api_name="/upload")
    return [row[1] for row in jobs["data"][: len(paths)]], library["data"]


def _documents(server: Server) -> list[tuple[str, int]]:
    with sqlite3.connect(server.data_dir / "docmind.db") as conn:
        return conn.execute("SELECT source, chunks FROM documents ORDER BY source").fetchall()


def _stored_files(server: Server) -> list[Path]:
    return sorted(p for p in (server.data_dir / "library").rglob("*") if p.is_file())


def _search(server: Server, query: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "docmind", "search", query, "-k", "1", "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "DOCMIND_DATA_DIR": str(server.data_dir)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_second_file_with_the_same_name_keeps_both(client: Client, server: Server, tmp_path: Path) -> None:
    [first], _ = _upload(client, _file(tmp_path / "a", "notes.txt", RED))
    [second], library = _upload(client, _file(tmp_path / "b", "notes.txt", BLUE))
    assert first.startswith("added: 1 passage") and second.startswith("added: 1 passage")
    assert [row[0] for row in library] == ["notes.txt", "notes.txt"]  # the user's name, twice
    documents = _documents(server)
    assert len(documents) == 2 and documents[0][0] != documents[1][0]
    assert [path.read_text() for path in _stored_files(server)] in ([RED, BLUE], [BLUE, RED])
    [red] = _search(server, "How long is the Zorblax warranty?")
    [blue] = _search(server, "How often should I descale the Quillon pump?")
    assert red["text"] == RED and blue["text"] == BLUE
    assert red["source"] != blue["source"]
    assert {Path(red["source"]).name, Path(blue["source"]).name} == {"notes.txt"}


def test_the_same_content_uploaded_again_is_stored_once(client: Client, server: Server, tmp_path: Path) -> None:
    before_documents, before_files = _documents(server), _stored_files(server)
    [again], _ = _upload(client, _file(tmp_path / "c", "notes.txt", RED))
    assert again == "already in the library (1 passage)"
    [renamed], _ = _upload(client, _file(tmp_path / "d", "warranty copy.txt", RED))
    assert renamed == "already in the library as notes.txt (1 passage)"
    assert _documents(server) == before_documents and _stored_files(server) == before_files


def test_one_batch_with_clashing_names_and_a_duplicate(client: Client, server: Server, tmp_path: Path) -> None:
    green = "Green tea should steep for two minutes at eighty degrees."
    statuses, _ = _upload(
        client,
        _file(tmp_path / "x", "tea.txt", green),
        _file(tmp_path / "y", "tea.txt", "Black tea wants boiling water and four minutes."),
        _file(tmp_path / "z", "tea.txt", green),
    )
    # rows are newest first: the duplicate (z) is recognised, x and y are both added
    assert statuses[0] == "already in the library (1 passage)"
    assert statuses[1].startswith("added") and statuses[2].startswith("added")
    tea = [path for path in _stored_files(server) if path.name == "tea.txt"]
    assert sorted(path.read_text() for path in tea) == sorted([green, "Black tea wants boiling water and four minutes."])
    assert len([source for source, _ in _documents(server) if Path(source).name == "tea.txt"]) == 2
