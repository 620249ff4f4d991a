"""Collections on a real database with the real embedding model: membership rules, and scoped retrieval
that filters before ranking in both the vector and the keyword search; the CLI in real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docmind.cache.collections import (
    CollectionError,
    add_to_collection,
    collection_documents,
    create_collection,
    delete_collection,
    list_collections,
    remove_from_collection,
    rename_collection,
    resolve_scope,
    scope_changes,
    session_scope,
    set_session_scope,
)
from docmind.cache.documents import remove_document
from docmind.cache.ingest import Ingestor
from docmind.cache.retrieval import Searcher
from docmind.config import Settings
from docmind.storage import open_database
from docmind.storage.sessions import ChatLog
from tests.cache.conftest import run_cli


def orchard_and_kitchen(root: Path) -> tuple[Path, Path]:
    """Two folders sharing the word "apple": three short orchard notes, and thirty kitchen notes that
    match an apple question far better, so a filter applied after ranking would find no orchard note."""
    orchard, kitchen = root / "orchard", root / "kitchen"
    orchard.mkdir(parents=True)
    kitchen.mkdir(parents=True)
    for n, text in enumerate(["Prune the old apple tree in late winter before the buds open.",
                              "Codling moth larvae tunnel into young apple fruit in summer.",
                              "Grafting an apple scion onto rootstock controls the tree's size."]):
        (orchard / f"orchard{n}.txt").write_text(text, encoding="utf-8")
    for n in range(30):
        (kitchen / f"recipe{n:02}.txt").write_text(
            f"Apple pie number {n}: slice the apples, add apple butter, apple sauce and cinnamon, bake the apple pie.",
            encoding="utf-8")
    return orchard, kitchen


@pytest.fixture
def two_collections(settings: Settings, tmp_path: Path) -> tuple[Settings, Path, Path]:
    orchard, kitchen = orchard_and_kitchen(tmp_path / "docs")
    report = Ingestor(settings).ingest([orchard, kitchen])
    assert report.files_new == 33, report.files_failed
    db = open_database(settings.db_path)
    create_collection(db, "Orchard")
    create_collection(db, "Kitchen")
    assert len(add_to_collection(db, "orchard", [orchard]).changed) == 3  # names match in any case
    assert len(add_to_collection(db, "Kitchen", [kitchen]).changed) == 30
    return settings, orchard, kitchen


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_scoped_search_filters_before_ranking(two_collections, mode: str) -> None:
    settings, orchard, kitchen = two_collections
    db = open_database(settings.db_path)
    searcher = Searcher(settings, db)
    question = "apple pie with apple sauce"
    everything = searcher.search(question, k=3, mode=mode)
    assert all(Path(c.source).parent == kitchen for c in everything)  # unscoped, the kitchen wins
    scoped = searcher.search(question, k=3, mode=mode, collections=resolve_scope(db, ["Orchard"]).collection_ids)
    assert sorted(Path(c.source).name for c in scoped) == ["orchard0.txt", "orchard1.txt", "orchard2.txt"]
    both = resolve_scope(db, ["Orchard", "Kitchen"]).collection_ids
    assert len(searcher.search(question, k=10, mode=mode, collections=both)) == 10


def test_membership_rules(two_collections) -> None:
    settings, orchard, kitchen = two_collections
    db = open_database(settings.db_path)
    with pytest.raises(CollectionError, match="already a collection"):
        create_collection(db, "ORCHARD")
    with pytest.raises(CollectionError, match="needs a name"):
        create_collection(db, "   ")
    with pytest.raises(CollectionError, match="no collection named"):
        add_to_collection(db, "Garden", [orchard])
    result = add_to_collection(db, "Kitchen", [orchard / "orchard0.txt", orchard / "missing.txt"])
    assert result.changed == [str(orchard / "orchard0.txt")] and result.not_found == [str(orchard / "missing.txt")]
    assert {c.name: c.documents for c in list_collections(db)} == {"Kitchen": 31, "Orchard": 3}

    remove_document(db, orchard / "orchard0.txt")  # leaves every collection with the library
    assert {c.name: c.documents for c in list_collections(db)} == {"Kitchen": 30, "Orchard": 2}
    assert remove_from_collection(db, "Kitchen", [kitchen / "recipe00.txt"]).changed == [str(kitchen / "recipe00.txt")]
    assert db.read("SELECT COUNT(*) FROM documents")[0][0] == 32  # taken out of the collection, not the library

    renamed = rename_collection(db, "Orchard", "Fruit trees")
    assert renamed.documents == 2 and collection_documents(db, "fruit trees") == sorted(
        str(orchard / f"orchard{n}.txt") for n in (1, 2))
    delete_collection(db, "Kitchen")
    assert [c.name for c in list_collections(db)] == ["Fruit trees"]
    assert db.read("SELECT COUNT(*) FROM documents")[0][0] == 32


def test_session_scope_is_stored_and_every_change_recorded(two_collections) -> None:
    settings, _, _ = two_collections
    db = open_database(settings.db_path)
    session = ChatLog(db).create_session("apples")
    assert session_scope(db, session).label == "All documents"
    assert set_session_scope(db, session, resolve_scope(db, ["Orchard"]))
    assert not set_session_scope(db, session, resolve_scope(db, ["orchard"]))  # no change, nothing recorded
    assert set_session_scope(db, session, resolve_scope(db, ["Kitchen", "Orchard"]))
    assert session_scope(db, session).label == "Kitchen, Orchard"
    delete_collection(db, "Kitchen")  # the chat keeps searching what is left
    assert session_scope(db, session).names == ("Orchard",)
    assert [change.label for change in scope_changes(db, session)] == ["Orchard", "Kitchen, Orchard"]


def test_collections_cli_and_scoped_ask_in_real_processes(data_dir: Path, tmp_path: Path) -> None:
    orchard, kitchen = orchard_and_kitchen(tmp_path / "docs")
    assert run_cli("ingest", str(orchard), str(kitchen), "--json").returncode == 0
    for args in (("create", "Orchard"), ("create", "Kitchen"), ("add", "Orchard", str(orchard)),
                 ("add", "Kitchen", str(kitchen))):
        result = run_cli("collections", *args, "--json")
        assert result.returncode == 0, result.stderr
    listed = json.loads(run_cli("collections", "list", "--json").stdout)
    assert listed == [{"name": "Kitchen", "documents": 30, "chunks": 30},
                      {"name": "Orchard", "documents": 3, "chunks": 3}]

    duplicate = run_cli("collections", "create", "kitchen", "--json")
    assert duplicate.returncode == 1 and duplicate.stdout == ""
    assert duplicate.stderr.strip().count("\n") == 0 and "already a collection" in duplicate.stderr
    unknown = run_cli("collections", "add", "Orchard", str(tmp_path / "nowhere"))
    assert unknown.returncode == 1 and "none of the paths is in the library" in unknown.stderr

    # no model on disk: the answer is a search result, and its sources come from the chosen collection only
    question = "what do you do with apples"  # both folders hold passages relevant enough to be shown
    asked = run_cli("ask", question, "--new-session", "--collection", "Orchard", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["citations"] and all(Path(c["source"]).parent == orchard for c in answer["citations"])
    again = run_cli("ask", question, "--session", answer["session"], "--collection", "Kitchen", "--json")
    cited = json.loads(again.stdout)["citations"]
    assert cited and all(Path(c["source"]).parent == kitchen for c in cited)
    unscoped = run_cli("ask", question, "--session", answer["session"], "--all-documents", "--json")
    assert {Path(c["source"]).parent for c in json.loads(unscoped.stdout)["citations"]} == {orchard, kitchen}
    db = open_database(data_dir / "docmind.db")
    assert [c.label for c in scope_changes(db, answer["session"])] == ["Orchard", "Kitchen", "All documents"]

    missing = run_cli("ask", "apples", "--collection", "Garden", "--json")
    assert missing.returncode == 1 and "no collection named 'Garden'" in missing.stderr

    assert json.loads(run_cli("collections", "rename", "Orchard", "Trees", "--json").stdout)["name"] == "Trees"
    assert json.loads(run_cli("collections", "delete", "Kitchen", "--json").stdout) == {"deleted": "Kitchen"}
    assert len(json.loads(run_cli("docs", "list", "--json").stdout)) == 33
