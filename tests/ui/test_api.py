"""The scripting API of a real running app (tiny random-weight Qwen3, real MiniLM embeddings), via gradio_client."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from tests.ui.conftest import Server

QUESTION = "What does the Zorblax warranty cover?"


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = {
        "warranty.txt": "The Zorblax warranty covers repairs for 3 years.\n\nReturns are accepted within 30 days.\n",
        "manual.md": "# Manual\n\nPress the red button to start the Zorblax engine.\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    paths["broken.pdf"] = folder / "broken.pdf"
    paths["broken.pdf"].write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    paths["photo.xyz"] = folder / "photo.xyz"
    paths["photo.xyz"].write_bytes(b"\x89PNG not a document")
    return paths


def _db_rows(server: Server, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(server.data_dir / "docmind.db") as conn:
        return conn.execute(sql, params).fetchall()


def _chat(client: Client, message: str, session_id: str = "", think: bool = True) -> tuple[list[dict], dict]:
    job = client.submit(message, session_id, think, api_name="/chat")
    partials = list(job)
    return partials, job.result()


def test_upload_ingests_good_files_and_reports_each_bad_one(client: Client, server: Server, corpus: dict) -> None:
    jobs, library, summary = client.predict([handle_file(str(p)) for p in corpus.values()], api_name="/upload")
    status = {row[0]: row[1] for row in jobs["data"]}
    assert status["warranty.txt"].startswith("added: 1 passage")
    assert status["manual.md"].startswith("added")
    assert "failed" in status["broken.pdf"] and "PDF" in status["broken.pdf"]
    assert "failed" in status["photo.xyz"] and ".xyz" in status["photo.xyz"]
    assert "**2 files of 4 added, 2 failed**" in summary and "✓" not in summary
    assert "Your library:** 2 documents, 2 passages." in summary
    assert sorted(row[0] for row in library["data"]) == ["manual.md", "warranty.txt"]
    stored = _db_rows(server, "SELECT source, chunks FROM documents ORDER BY source")
    assert [Path(source).name for source, _ in stored] == ["manual.md", "warranty.txt"]
    assert all(Path(source).parent.parent == server.data_dir / "library" for source, _ in stored)  # library/<hash>/
    assert _db_rows(server, "SELECT COUNT(*) FROM chunks")[0][0] == sum(chunks for _, chunks in stored) > 0


def test_upload_summary_describes_the_latest_upload_only(client: Client, tmp_path: Path) -> None:
    notes = tmp_path / "service.md"
    notes.write_text("# Service\n\nThe Zorblax is serviced twice a year.\n")
    jobs, _, summary = client.predict([handle_file(str(notes))], api_name="/upload")
    assert summary.startswith("✓ **service.md**: added: 1 passage.")
    assert "failed" not in summary and "Your library:** 3 documents, 3 passages." in summary
    assert len(jobs["data"]) == 5  # the table still lists earlier uploads, newest first
    assert jobs["data"][0][0] == "service.md"


def test_chat_streams_an_answer_into_a_new_session(client: Client, server: Server) -> None:
    partials, final = _chat(client, QUESTION)
    assert final["done"] and not final["error"], final
    assert final["session"] and final["answer"]
    answers = [p["answer"] for p in partials if p["answer"] and not p["done"]]
    assert len(set(answers)) >= 2, "the answer arrived in one piece instead of streaming"
    roles = _db_rows(server, "SELECT role, status FROM messages WHERE session_id = ? ORDER BY id", (final["session"],))
    assert roles == [("user", "complete"), ("assistant", "complete")]


def test_chat_continues_the_session_it_is_given(client: Client, server: Server) -> None:
    _, first = _chat(client, QUESTION)
    _, second = _chat(client, "And how long for returns?", first["session"])
    assert second["session"] == first["session"] and second["done"]
    count = _db_rows(server, "SELECT COUNT(*) FROM messages WHERE session_id = ?", (first["session"],))[0][0]
    assert count == 4


async def test_answer_fast_skips_thinking(tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """The switch reaches the model: every prompt of a fast turn ends in the chat template's empty think block
    (so the model cannot think), and no prompt of a thinking turn does. Checked on what the engine is given."""
    from docmind.config import load_settings
    from docmind.model.runtime import get_runtime, unload
    from docmind.ui.chat import Chatter
    from docmind.ui.context import AppContext

    settings = load_settings(data_dir=data_dir, model_path=tiny_model_dir, quantization="none", max_new_tokens=8)
    context = AppContext.create(settings, tmp_path / "uploads")
    chatter = Chatter(settings)
    engine = get_runtime(settings).engine
    prompts: list[str] = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda request: prompts.append(request.prompt) or submit(request))
    seen: dict[bool, tuple[list[str], object]] = {}
    try:
        for think in (False, True):
            prompts.clear()
            async for view in chatter.turn(context, QUESTION, "", think):
                pass
            assert view.done and not view.error
            seen[think] = (list(prompts), view)
    finally:
        unload()
    fast_prompts, fast_view = seen[False]
    thinking_prompts, _ = seen[True]
    assert fast_prompts and thinking_prompts
    assert all(p.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for p in fast_prompts)
    assert all(p.endswith("<|im_start|>assistant\n") for p in thinking_prompts)
    assert fast_view.thinking == ""


@pytest.mark.parametrize(
    ("message", "session", "expected"),
    [("   ", "", "empty"), (QUESTION, "no-such-session", "docmind sessions list")],
)
def test_bad_requests_get_a_clear_error(client: Client, message: str, session: str, expected: str) -> None:
    _, final = _chat(client, message, session)
    assert expected in final["error"] and not final["done"]
    assert "Traceback" not in final["error"]


def test_sessions_list_rename_export_delete(client: Client, server: Server) -> None:
    _, final = _chat(client, "Which button starts the engine?")
    session = final["session"]
    listed = {s["id"]: s for s in client.predict(api_name="/sessions")}
    assert listed[session]["title"] == "Which button starts the engine?"
    assert set(listed[session]) == {"id", "title", "created_at", "updated_at", "messages"}
    assert listed[session]["messages"] == 2

    renamed = client.predict(session, "Engine start", api_name="/rename_session")
    assert renamed["title"] == "Engine start"
    assert {s["id"]: s["title"] for s in client.predict(api_name="/sessions")}[session] == "Engine start"

    markdown = client.predict(session, "md", api_name="/export_session")
    assert markdown.startswith("# Engine start") and "Which button starts the engine?" in markdown
    exported = json.loads(client.predict(session, "json", api_name="/export_session"))
    assert exported["format"] == "docmind-session" and len(exported["messages"]) == 2

    assert client.predict(session, api_name="/delete_session") is True
    assert session not in {s["id"] for s in client.predict(api_name="/sessions")}
    assert _db_rows(server, "SELECT COUNT(*) FROM messages WHERE session_id = ?", (session,))[0][0] == 0


def test_two_clients_stream_at_the_same_time_in_their_own_sessions(server: Server) -> None:
    results: dict[int, dict] = {}
    first_partial: dict[int, float] = {}
    finished: dict[int, float] = {}

    clients = [Client(server.url, verbose=False) for _ in range(2)]  # connected before either asks
    together = threading.Barrier(2)

    def run(index: int) -> None:
        together.wait()
        job = clients[index].submit(f"Question {index}: what is covered?", api_name="/chat")
        for partial in job:
            if partial["answer"]:
                first_partial.setdefault(index, time.monotonic())
        finished[index] = time.monotonic()
        results[index] = job.result()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(results[i]["done"] for i in range(2)), results
    assert results[0]["session"] != results[1]["session"]
    assert max(first_partial.values()) < min(finished.values()), "the second chat waited for the first to finish"
