"""The real thing: the tiny random-weight Qwen3 on the batched engine, real MiniLM search, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from llama_index.core.llms import ChatMessage

from docmind.agent.chat import ChatService, ModelHandle
from docmind.agent.events import AnswerToken, Done, Notice, ThinkingToken, ToolCalled, TurnStarted
from docmind.agent.memory import SessionMemory
from docmind.storage import SQLiteChatStore
from docmind.storage.sessions import ChatLog
from docmind.agent.sessions import NothingToRegenerateError
from docmind.agent.turns import SessionBusyError, SessionLock
from tests.agent.conftest import ScriptedLLM, run_turn

ANSWER_TOKENS = 12
VALID_SEARCH = ('Thought: I need the report.\nAction: search_documents\n'
                'Action Input: {"query": "revenue growth third quarter"}')
VALID_ANSWER = "Thought: The passage says it.\nAnswer: Revenue grew by 12 percent in the third quarter [1]."


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir):
    """An engine of its own over the tiny model (not the process-wide runtime)."""
    from docmind.config import load_settings
    from docmind.model.engine import GenerationEngine
    from docmind.model.loading import load_model

    loaded = load_model(load_settings(model_path=tiny_model_dir, quantization="none"))
    engine = GenerationEngine(loaded.model, loaded.tokenizer)
    yield engine
    engine.shutdown()


@pytest.fixture
def tiny(tiny_engine) -> ModelHandle:
    from docmind.model.llm import EngineLLM

    llm = EngineLLM(tiny_engine, max_new_tokens=ANSWER_TOKENS, temperature=0.0)
    return ModelHandle(llm=llm, count_tokens=lambda text: len(tiny_engine.tokenize(text)) if text else 0,
                       context_window=tiny_engine.context_window)


async def test_valid_react_is_answered_by_the_agent_with_a_real_citation(settings_with_library, tiny):
    """A valid ReAct exchange (scripted: random weights never write one) through the real agent, search and store."""
    llm = ScriptedLLM(replies=[VALID_SEARCH, VALID_ANSWER])
    service = ChatService(settings_with_library, model=ModelHandle(llm, tiny.count_tokens, tiny.context_window))
    events = await run_turn(service, None, "How much did revenue grow?")
    done = events[-1]
    assert isinstance(done, Done) and done.mode == "agent"
    assert [e.tool for e in events if isinstance(e, ToolCalled)] == ["search_documents"]
    assert done.answer == "Revenue grew by 12 percent in the third quarter [1]."
    [citation] = done.citations
    assert citation.number == 1 and citation.source.endswith("report.md") and "12 percent" in citation.text
    assert "[1] (report.md)" in llm.calls[1][-1].content  # the real search result was the observation
    _, answer = ChatLog(service.db).messages(done.session_id)
    assert answer.extra["mode"] == "agent" and answer.extra["citations"][0]["source"] == citation.source
    assert answer.tokens == tiny.count_tokens(done.answer)


async def test_full_turn_through_the_real_model_falls_back_when_react_fails(settings_with_library, tiny, tiny_engine,
                                                                           monkeypatch):
    """The tiny model itself; ``max_iterations=1`` ends the ReAct loop after its first step, as an unparsable
    answer would, so the turn always takes the fallback: one direct answer from the passages."""
    service = ChatService(settings_with_library, model=tiny, max_iterations=1)
    events = await run_turn(service, None, "How much did revenue grow?")
    assert isinstance(events[0], TurnStarted) and isinstance(events[-1], Done)
    done = events[-1]
    assert done.mode == "fallback"
    assert any(isinstance(e, Notice) and e.kind == "fallback" for e in events)
    assert any(isinstance(e, (AnswerToken, ThinkingToken)) for e in events)
    assert done.answer and done.completion_tokens > 0 and done.prompt_tokens > 0
    user, answer = ChatLog(service.db).messages(done.session_id)
    assert (user.content, user.tokens) == ("How much did revenue grow?", tiny.count_tokens(user.content))
    assert answer.status == "complete" and answer.content == done.answer
    assert answer.tokens == tiny.count_tokens(done.answer)  # counted once, by the model's tokenizer

    # the second turn sees the first one in the prompts that reach the engine
    prompts: list[str] = []
    submit = tiny_engine.submit
    monkeypatch.setattr(tiny_engine, "submit", lambda request: prompts.append(request.prompt) or submit(request))
    events = await run_turn(service, done.session_id, "And the offices?")
    assert isinstance(events[-1], Done) and len(prompts) == 2  # one agent step, one direct answer
    assert all("How much did revenue grow?" in p and done.answer in p and "And the offices?" in p for p in prompts)
    assert len(ChatLog(service.db).messages(done.session_id)) == 4


async def test_regenerate_drops_the_last_turn_and_answers_its_question_again(settings_with_library, tiny):
    service = ChatService(settings_with_library, model=tiny)
    first = (await run_turn(service, None, "How much did revenue grow?"))[-1]
    second = (await run_turn(service, first.session_id, "And the offices?"))[-1]
    before = ChatLog(service.db).messages(first.session_id)

    events = [e async for e in service.regenerate(first.session_id)]
    assert isinstance(events[0], TurnStarted) and events[0].question == "And the offices?"
    assert isinstance(events[-1], Done) and events[-1].session_id == first.session_id
    stored = ChatLog(service.db).messages(first.session_id)
    assert [m.content for m in stored[:3]] == ["How much did revenue grow?", first.answer, "And the offices?"]
    assert stored[:2] == before[:2] and stored[2].created_at > before[2].created_at  # asked again, not kept
    assert len(stored) == 4 and stored[3].status == "complete" and stored[3].content == events[-1].answer
    assert second.session_id == first.session_id


async def test_regenerate_waits_for_a_running_turn_and_never_interleaves(settings_with_library, tiny):
    service = ChatService(settings_with_library, model=tiny)
    session_id = (await run_turn(service, None, "How much did revenue grow?"))[-1].session_id
    started = asyncio.Event()

    async def ask() -> None:
        async for _ in service.chat(session_id, "And the offices?"):
            started.set()  # the turn holds the session from here until it is stored

    asked = asyncio.create_task(ask())
    await started.wait()
    again = [e async for e in service.regenerate(session_id)]
    await asked
    assert again[0].question == "And the offices?"  # it dropped the turn that was running when it was asked
    stored = ChatLog(service.db).messages(session_id)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert all(m.status == "complete" for m in stored)


async def test_regenerate_refuses_a_busy_or_empty_session_and_drops_nothing(settings_with_library, tiny):
    service = ChatService(settings_with_library, model=tiny)
    empty = service.sessions.create().id
    with pytest.raises(NothingToRegenerateError, match="no question"):
        [e async for e in service.regenerate(empty)]
    session_id = (await run_turn(service, None, "How much did revenue grow?"))[-1].session_id
    before = ChatLog(service.db).messages(session_id)
    other_process = SessionLock(service.sessions.log, session_id)  # the lock file as another process holds it
    await other_process.acquire()
    try:
        with pytest.raises(SessionBusyError):
            [e async for e in service.regenerate(session_id)]
    finally:
        other_process.release()
    assert ChatLog(service.db).messages(session_id) == before


def test_memory_keeps_the_newest_turns_within_the_limit(db_path, tiny):
    store = SQLiteChatStore(db_path)
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return tiny.count_tokens(text)

    memory = SessionMemory.for_session(store, "s", count, token_limit=300)
    for turn in range(40):
        memory.put(ChatMessage(role="user", content=f"question {turn} about the quarterly report"))
        memory.put(ChatMessage(role="assistant", content=f"answer {turn}: revenue grew by {turn} percent"))
    assert all(m.tokens == tiny.count_tokens(m.content) for m in store.chat_log.messages("s"))
    counted.clear()
    kept = memory.get()
    assert counted == []  # stored counts are trusted: nothing is re-tokenized
    assert kept[-1].content == "answer 39: revenue grew by 39 percent"
    assert kept[0].role.value == "user" and len(kept) < 80
    used = sum(tiny.count_tokens(m.content) + 5 for m in kept)
    assert used <= 300 < used + tiny.count_tokens("answer 0: revenue grew by 0 percent") * 4
    numbers = [int(m.content.split()[1].rstrip(":")) for m in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 39  # the newest turns, in order


async def test_five_sessions_at_once_are_batched_and_isolated(settings_with_library, tiny, tiny_engine):
    service = ChatService(settings_with_library, model=tiny)
    questions = [f"Question number {i} about {topic}?" for i, topic in enumerate(
        ["revenue", "offices", "tomatoes", "basil", "widgets"])]
    busiest = 0

    async def watch() -> None:
        nonlocal busiest
        while True:
            busiest = max(busiest, tiny_engine.active_requests)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(run_turn(service, None, q) for q in questions))
    watcher.cancel()
    assert busiest >= 2  # the engine decoded several sessions in one batch
    sessions = [events[-1].session_id for events in results]
    assert len(set(sessions)) == 5
    for question, events in zip(questions, results):
        stored = ChatLog(service.db).messages(events[-1].session_id)
        assert [m.content for m in stored] == [question, events[-1].answer]
        assert service.sessions.get(events[-1].session_id).title == question


def _docmind_env(data_dir, model_dir, max_new_tokens: int) -> dict[str, str]:
    return {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "DOCMIND_MODEL_PATH": str(model_dir),
            "DOCMIND_QUANTIZATION": "none", "DOCMIND_MAX_NEW_TOKENS": str(max_new_tokens)}


def test_kill_9_mid_turn_then_resume_in_a_new_process(settings_with_library, tiny_model_dir):
    data_dir = settings_with_library.data_dir
    log = ChatLog(data_dir / "docmind.db")
    partial = None
    for _attempt in range(8):  # a sampled end-of-turn token can finish a random model's answer too soon
        first = subprocess.Popen(
            [sys.executable, "-m", "docmind", "ask", "--new-session", "What does the report say about revenue?"],
            env=_docmind_env(data_dir, tiny_model_dir, 3000), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            rows = [m for s in log.sessions() for m in log.messages(s.id)]
            partial = next((m for m in rows if m.status == "streaming" and (m.content or m.thinking)), None)
            if partial:
                break
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        if partial:
            break
    assert partial is not None, "the answer never started streaming to disk"

    session_id = partial.session_id
    question, cut = log.messages(session_id)
    assert question.content == "What does the report say about revenue?" and question.status == "complete"
    assert cut.status == "streaming"  # nobody could mark it: the process died

    second = subprocess.run(
        [sys.executable, "-m", "docmind", "ask", "--session", session_id, "--json", "And about the offices?"],
        env=_docmind_env(data_dir, tiny_model_dir, ANSWER_TOKENS), capture_output=True, text=True, timeout=300,
    )
    assert second.returncode == 0, second.stderr
    answer = json.loads(second.stdout)
    keys = {"session", "answer", "thinking", "citations", "prompt_tokens", "completion_tokens", "seconds"}
    assert set(answer) >= keys
    assert answer["session"] == session_id
    stored = log.messages(session_id)
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"), ("assistant", "interrupted"), ("user", "complete"), ("assistant", "complete")
    ]
    assert stored[1].content == cut.content and stored[1].thinking == cut.thinking
    assert stored[3].content == answer["answer"]


def test_messages_stored_without_a_count_are_counted_once(db_path, tiny):
    from docmind.storage.sessions import StoredMessage

    store = SQLiteChatStore(db_path)
    store.chat_log.append("s", StoredMessage(role="user", content="asked before any model was downloaded"))
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return tiny.count_tokens(text)

    memory = SessionMemory.for_session(store, "s", count)
    assert [m.content for m in memory.get()] == ["asked before any model was downloaded"]
    assert store.chat_log.messages("s")[0].tokens == tiny.count_tokens("asked before any model was downloaded")
    memory.get()
    assert len(counted) == 1


def test_ask_reports_a_failed_turn_in_one_line_and_keeps_the_question(settings_with_library, tiny_model_dir,
                                                                      tmp_path):
    """A model whose weights are all NaN: the engine fails the request, the turn ends in TurnFailed, and
    ``docmind ask`` says so on one line (exit 1) while the question stays stored."""
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    save_file({name: torch.full_like(t, float("nan")) for name, t in load_file(weights).items()}, weights,
              metadata={"format": "pt"})
    data_dir = settings_with_library.data_dir
    result = subprocess.run(
        [sys.executable, "-m", "docmind", "ask", "--new-session", "--json", "What does the report say?"],
        env=_docmind_env(data_dir, broken, ANSWER_TOKENS), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("docmind: error: ") and "NaN" in error and "kept in session" in error
    log = ChatLog(data_dir / "docmind.db")
    (session,) = log.sessions()
    assert log.messages(session.id)[0].content == "What does the report say?"
