"""The sessions API and `docmind sessions ...` on real SQLite files and real subprocesses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest

from docmind.agent.sessions import InvalidExportError, Sessions, UnknownSessionError, title_from_question
from docmind.agent.turns import SessionBusyError, lock_path
from docmind.storage.sessions import ChatLog, StoredMessage

CITATION = {"number": 1, "source": "/docs/report.pdf", "page": 3, "text": "Revenue grew by 12 percent."}


def _chat(db_path, question: str = "How much did revenue grow?", answer: str = "By 12 percent [1].") -> str:
    sessions = Sessions(db_path)
    info = sessions.create()
    log = ChatLog(db_path)
    log.append(info.id, StoredMessage(role="user", content=question, tokens=8))
    sessions.title_from_first_question(info.id, question)
    log.append(
        info.id,
        StoredMessage(role="assistant", content=answer, thinking="secret pondering", extra={"citations": [CITATION]}),
    )
    return info.id


def _docmind(*args: str, data_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "docmind", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_title_from_question():
    assert title_from_question("  What is   DocMind?\nmore") == "What is DocMind?"
    long = title_from_question("word " * 40)
    assert len(long) <= 60 and long.endswith("…")


def test_create_title_list_rename_delete(db_path):
    sessions = Sessions(db_path)
    first = _chat(db_path, "First question about cats")
    time.sleep(0.01)
    second = _chat(db_path, "Second question about dogs")
    listed = sessions.list()
    assert [s.id for s in listed] == [second, first]  # newest first
    assert listed[0].title == "Second question about dogs" and listed[0].messages == 2
    sessions.title_from_first_question(first, "another question")  # a title is set once
    assert sessions.get(first).title == "First question about cats"
    assert sessions.rename(first, "  Cats  ").title == "Cats"
    sessions.delete(second)
    assert [s.id for s in sessions.list()] == [first]
    assert ChatLog(db_path).messages(second) == []  # messages go with their session
    for call in (lambda: sessions.get(second), lambda: sessions.delete(second), lambda: sessions.rename("x", "t")):
        with pytest.raises(UnknownSessionError, match="docmind sessions list"):
            call()


def test_search_finds_text_not_thinking(db_path):
    sessions = Sessions(db_path)
    cats = _chat(db_path, "Tell me about cats", "Cats sleep a lot.")
    _chat(db_path, "Tell me about dogs", "Dogs bark.")
    hits = sessions.search("sleep")
    assert [(h.session, h.role) for h in hits] == [(cats, "assistant")]
    assert "[sleep]" in hits[0].snippet
    assert sessions.search("pondering") == []  # thinking is not searchable
    assert len(sessions.search('about "cats* -')) >= 1  # FTS syntax in user text is harmless
    assert sessions.search("   ") == []


def test_export_markdown_and_json_round_trip(db_path, tmp_path):
    sessions = Sessions(db_path)
    session_id = _chat(db_path)
    markdown = sessions.export_markdown(session_id)
    assert markdown.startswith("# How much did revenue grow?")
    assert "<details><summary>Thinking</summary>" in markdown and "secret pondering" in markdown
    assert "[1] report.pdf, page 3" in markdown and "Revenue grew by 12 percent." in markdown

    export = sessions.export_json(session_id)
    assert export["messages"][1]["citations"] == [CITATION]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    other_db = tmp_path / "other.db"
    imported = Sessions(other_db).import_json(path)
    assert imported.id == session_id and imported.title == export["title"]
    assert Sessions(other_db).export_json(session_id)["messages"] == export["messages"]
    again = sessions.import_json(export)  # the id is taken here: the copy gets a new one
    assert again.id != session_id and again.messages == 2


def test_import_rejects_other_files(db_path, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidExportError, match="sessions export"):
        Sessions(db_path).import_json(bad)
    with pytest.raises(InvalidExportError):
        Sessions(db_path).import_json({"messages": []})
    with pytest.raises(InvalidExportError, match="malformed"):
        Sessions(db_path).import_json({"format": "docmind-session", "messages": [{"role": "hacker"}]})
    assert Sessions(db_path).list() == []


def test_cli_sessions_json_contract(data_dir, tmp_path):
    session_id = _chat(data_dir / "docmind.db")
    listed = json.loads(_docmind("sessions", "list", "--json", data_dir=data_dir).stdout)
    assert listed == [{**listed[0], "id": session_id, "messages": 2}]
    assert set(listed[0]) == {"id", "title", "created_at", "updated_at", "messages"}

    shown = json.loads(_docmind("sessions", "show", session_id, "--json", data_dir=data_dir).stdout)
    assert {"id", "title", "messages"} <= set(shown)
    assert {"role", "content", "thinking", "created_at"} <= set(shown["messages"][1])
    assert shown["messages"][1]["thinking"] == "secret pondering"

    hits = json.loads(_docmind("sessions", "search", "revenue", "--json", data_dir=data_dir).stdout)
    assert hits and set(hits[0]) == {"session", "title", "role", "snippet", "created_at"}

    renamed = _docmind("sessions", "rename", session_id, "Revenue", "--json", data_dir=data_dir)
    assert json.loads(renamed.stdout)["title"] == "Revenue"

    out = tmp_path / "s.json"
    exported = _docmind("sessions", "export", session_id, "--format", "json", "-o", str(out), data_dir=data_dir)
    assert exported.returncode == 0
    assert "# Revenue" in _docmind("sessions", "export", session_id, data_dir=data_dir).stdout
    assert _docmind("sessions", "delete", session_id, data_dir=data_dir).returncode == 0
    imported = json.loads(_docmind("sessions", "import", str(out), "--json", data_dir=data_dir).stdout)
    assert imported["id"] == session_id and imported["messages"] == 2


def test_cli_unknown_session_is_one_clear_line(data_dir):
    result = _docmind("sessions", "show", "nosuchid", data_dir=data_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "docmind: error: No session with id 'nosuchid'. Run `docmind sessions list` to see the session ids."
    ]


def test_sessions_list_imports_nothing_heavy(data_dir):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "docmind", "sessions", "list", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0
    modules = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not modules & {"torch", "transformers", "gradio", "llama_index"}


def test_delete_is_refused_while_another_process_answers_and_removes_the_lock_file(db_path):
    sessions = Sessions(db_path)
    session_id = _chat(db_path, "A question being answered")
    path = lock_path(sessions.log, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(  # a turn in another DocMind process holds the session's lock
        [sys.executable, "-c", f"from filelock import FileLock; import sys; lock = FileLock({str(path)!r}); "
                               "lock.acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SessionBusyError, match="answering a question right now"):
            sessions.delete(session_id)
        assert sessions.get(session_id).messages == 2  # nothing was lost
    finally:
        holder.communicate("", timeout=10)
    sessions.delete(session_id)
    assert not path.exists()
    with pytest.raises(UnknownSessionError):
        sessions.get(session_id)


def test_chat_labels_carry_the_start_time_and_latest_is_the_last_active_chat(db_path) -> None:
    from datetime import datetime, timezone

    from docmind.agent.sessions import chat_label, chat_labels, when_label

    today = datetime(2026, 12, 4, 15, 0, tzinfo=timezone.utc).astimezone()
    assert when_label("2026-12-04T14:05:00.000+00:00", today).startswith("today ")
    local = datetime(2026, 12, 1, 9, 12, tzinfo=timezone.utc).astimezone()
    assert when_label("2026-12-01T09:12:00.000+00:00", today) == f"{local.day} {local:%b} {local:%H:%M}"
    assert "2025" in when_label("2025-06-01T09:12:00.000+00:00", today)
    sessions = Sessions(db_path)
    assert sessions.latest() is None
    first = sessions.create("Warranty?")
    sessions.log.append(first.id, StoredMessage("user", "Warranty?"))
    second = sessions.create("Warranty?")
    sessions.log.append(second.id, StoredMessage("user", "Warranty?"))
    sessions.create("")  # an empty new chat is never the one to reopen
    assert chat_label(sessions.get(first.id)).startswith("Warranty? · today ")
    assert sessions.latest().id == second.id
    older = sessions.get(first.id)
    same_minute = [dataclasses.replace(sessions.get(second.id), created_at=older.created_at), older]  # newest first
    labels = chat_labels(same_minute, today)
    assert labels[1] == chat_label(same_minute[1], today) and labels[0] == f"{labels[1]} (2)"
