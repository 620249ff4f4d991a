"""Watched folders with a real ``docmind serve`` process and real files: created, modified, renamed,
deleted and slowly written files follow into the library, a folder tied to a collection fills it, and
changes made while the app was closed are applied when it starts again."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tests.cache.conftest import run_cli
from tests.ui.conftest import start_server, stop_server

APP_ENV = {"DOCMIND_WATCH_DEBOUNCE_SECONDS": "1.5", "DOCMIND_WATCH_RESCAN_SECONDS": "600",
           "DOCMIND_LOG_LEVEL": "INFO"}


def documents(data_dir: Path) -> dict[str, str]:
    """Each document's file name and its whole text."""
    conn = sqlite3.connect(data_dir / "docmind.db")
    try:
        rows = conn.execute("SELECT d.source, GROUP_CONCAT(c.text, ' ') FROM documents d"
                            " LEFT JOIN chunks c ON c.source = d.source GROUP BY d.source").fetchall()
        return {Path(source).name: text or "" for source, text in rows}
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except sqlite3.OperationalError:  # the app is still creating the database
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def cli_json(data_dir: Path, *args: str) -> object:
    result = run_cli("--data-dir", str(data_dir), *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_watched_folder_follows_its_files_while_the_app_runs_and_across_restarts(tmp_path: Path) -> None:
    data_dir, folder = tmp_path / "data", tmp_path / "watched"
    folder.mkdir()
    (folder / "alpha.txt").write_text("Alpha notes about lighthouses on rocky coasts.", encoding="utf-8")
    (folder / ".hidden.txt").write_text("never ingested", encoding="utf-8")
    cli_json(data_dir, "collections", "create", "Coast")
    added = cli_json(data_dir, "watch", "add", str(folder), "--collection", "Coast")
    assert added["collection"] == "Coast" and added["state"] == "not watched while DocMind is closed"

    server = start_server(data_dir, tmp_path / "app.log", env=APP_ENV)
    try:
        wait_for("the start-up scan", lambda: "alpha.txt" in documents(data_dir))
        (folder / "beta.md").write_text("# Beta\n\nBeta describes tide pools and sea anemones.", encoding="utf-8")
        wait_for("a new file", lambda: "beta.md" in documents(data_dir))
        (folder / "alpha.txt").write_text("Alpha now covers foghorns instead.", encoding="utf-8")
        wait_for("a changed file", lambda: "foghorns" in documents(data_dir).get("alpha.txt", ""))
        (folder / "beta.md").rename(folder / "gamma.md")
        wait_for("a renamed file", lambda: {"gamma.md", "alpha.txt"} == set(documents(data_dir)))
        (folder / "alpha.txt").unlink()
        wait_for("a deleted file", lambda: set(documents(data_dir)) == {"gamma.md"})

        with open(folder / "slow.txt", "w", encoding="utf-8") as slow:  # written in parts, 0.4 s apart
            for part in range(6):
                slow.write(f"Part {part} of the slow file mentions harbour number {part}. ")
                slow.flush()
                time.sleep(0.4)
        wait_for("the slowly written file", lambda: "slow.txt" in documents(data_dir))
        time.sleep(3)  # time for a second, wrong ingest to show up if the debounce failed
        assert "harbour number 5" in documents(data_dir)["slow.txt"]
        ingests = re.findall(r"ingested (\S+slow\.txt)", server.log())
        assert ingests == [str((folder / "slow.txt").resolve())], server.log()[-3000:]

        listed = cli_json(data_dir, "watch", "list")
        assert listed == [{"path": str(folder.resolve()), "collection": "Coast", "state": "watching", "files": 2,
                           "waiting": 0, "last_error": ""}]
        coast = cli_json(data_dir, "collections", "list")
        assert coast[0]["name"] == "Coast" and coast[0]["documents"] == 2
    finally:
        stop_server(server)

    (folder / "gamma.md").write_text("# Gamma\n\nGamma is about sand dunes now.", encoding="utf-8")
    (folder / "delta.txt").write_text("Delta: estuaries and salt marshes.", encoding="utf-8")
    (folder / "slow.txt").unlink()
    server = start_server(data_dir, tmp_path / "app2.log", env=APP_ENV)
    try:
        wait_for("the catch-up at start-up", lambda: set(documents(data_dir)) == {"gamma.md", "delta.txt"}
                 and "dunes" in documents(data_dir)["gamma.md"])
        wait_for("the collection to follow", lambda: cli_json(data_dir, "collections", "list")[0]["documents"] == 2)
    finally:
        stop_server(server)
    assert cli_json(data_dir, "watch", "remove", str(folder))["path"] == str(folder.resolve())
    assert cli_json(data_dir, "watch", "list") == [] and len(documents(data_dir)) == 2  # the documents stay


def test_watch_add_refuses_what_it_cannot_watch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    missing = run_cli("--data-dir", str(data_dir), "watch", "add", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "is not a folder" in missing.stderr
    (tmp_path / "docs").mkdir()
    unknown = run_cli("--data-dir", str(data_dir), "watch", "add", str(tmp_path / "docs"), "--collection", "Nope")
    assert unknown.returncode == 1 and "no collection named 'Nope'" in unknown.stderr
    not_watched = run_cli("--data-dir", str(data_dir), "watch", "remove", str(tmp_path / "docs"))
    assert not_watched.returncode == 1 and "is not a watched folder" in not_watched.stderr


def test_an_unplugged_folder_keeps_its_documents_and_catches_up_when_back(settings, tmp_path: Path) -> None:
    from docmind.cache.watch import MISSING, WATCHING, FolderWatcher, add_watched_folder, list_watched_folders
    from docmind.storage import open_database

    folder, away = tmp_path / "usb", tmp_path / "usb-unplugged"
    folder.mkdir()
    (folder / "one.txt").write_text("One: notes about lighthouses.", encoding="utf-8")
    db = open_database(settings.db_path)
    add_watched_folder(db, folder)
    watcher = FolderWatcher(settings.model_copy(update={"watch_debounce_seconds": 0.5, "watch_rescan_seconds": 1.0}),
                            db)
    watcher.start()
    try:
        wait_for("the first scan", lambda: set(documents(settings.data_dir)) == {"one.txt"})
        folder.rename(away)  # the drive goes away: its documents stay
        wait_for("the missing state", lambda: list_watched_folders(db)[0].state == MISSING)
        assert set(documents(settings.data_dir)) == {"one.txt"}
        (away / "two.txt").write_text("Two: notes about harbours.", encoding="utf-8")
        away.rename(folder)  # back, with a file added meanwhile
        wait_for("the catch-up", lambda: set(documents(settings.data_dir)) == {"one.txt", "two.txt"})
        wait_for("the watching state", lambda: list_watched_folders(db)[0].state == WATCHING)
    finally:
        watcher.stop()
