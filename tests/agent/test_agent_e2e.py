"""The real thing: the tiny random-weight Qwen3 on the batched engine, real MiniLM search, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from llama_index.core.llms import ChatMessage

from docmind.agent.chat import ChatService, ModelHandle
from docmind.agent.events import AnswerToken, Done, ThinkingToken, TurnStarted
from docmind.agent.memory import SessionMemory
from docmind.storage import SQLiteChatStore
from docmind.storage.sessions import ChatLog
from tests.agent.conftest import run_turn

ANSWER_TOKENS = 12


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


async def test_full_turn_through_the_real_agent(settings_with_library, tiny):
    service = ChatService(settings_with_library, model=tiny)
    events = await run_turn(service, None, "How much did revenue grow?")
    assert isinstance(events[0], TurnStarted) and isinstance(events[-1], Done)
    done = events[-1]
    assert done.mode in ("agent", "fallback")  # random weights rarely write valid ReAct
    assert any(isinstance(e, (AnswerToken, ThinkingToken)) for e in events)
    assert done.answer and done.completion_tokens > 0 and done.prompt_tokens > 0
    user, answer = ChatLog(service.db).messages(done.session_id)
    assert (user.content, user.tokens) == ("How much did revenue grow?", tiny.count_tokens(user.content))
    assert answer.status == "complete" and answer.content == done.answer
    assert answer.tokens == tiny.count_tokens(done.answer)  # counted once, by the model's tokenizer

    # the second turn sees the first one in its prompt
    events = await run_turn(service, done.session_id, "And the offices?")
    assert events[-1].prompt_tokens > done.prompt_tokens
    assert len(ChatLog(service.db).messages(done.session_id)) == 4


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
