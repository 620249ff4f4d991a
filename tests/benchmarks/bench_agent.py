"""Benchmark of the agent layer. Prints one JSON document.

memory:      load the newest 65,536 tokens of a 72K-token session from SQLite and build the agent's prompt
             (SessionMemory on stored token counts), against stock ChatMemoryBuffer over a SimpleChatStore
             persisted to JSON (the stock persist() fails with pydantic 2.14, so the JSON is written in
             its format by hand). Token counts: tiktoken cl100k, the stock buffer's own tokenizer.
ttft:        time from chat() to the first streamed token at turn 1 and turn 20 of one session, through
             the real ReActAgent on the batched engine, with the tiny random-weight Qwen3 (its context
             raised to 32K so that 19 turns of history fit).
concurrency: aggregate answer tokens/s of 5 sessions answering at once against 1 session, same model.
The tiny model measures DocMind's own overhead and the engine's batching, not a real model's speed.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HISTORY_TOKENS = 65536
STORED_TOKENS = 72000
"""More history than the limit, so both memories must drop the oldest turns (a long session's steady state)."""
MEMORY_RUNS = 15
TURNS = 20
ANSWER_TOKENS = 48
CONCURRENT = 5


def _history(count_tokens) -> list:
    """Alternating questions and answers, ~260 tokens each, until they hold STORED_TOKENS tokens."""
    from llama_index.core.llms import ChatMessage

    sentence = "The quarterly report says revenue grew by twelve percent while costs fell in Lisbon and Oslo. "
    messages, total, turn = [], 0, 0
    while total < STORED_TOKENS:
        role = "user" if turn % 2 == 0 else "assistant"
        text = f"Turn {turn}. " + sentence * 14
        tokens = count_tokens(text)
        messages.append(ChatMessage(role=role, content=text, additional_kwargs={"tokens": tokens}))
        total += tokens + 5
        turn += 1
    return messages


def _prompt(history, tokenizer) -> str:
    """What the agent sends to the model: the ReAct system header, history and question, chat-templated."""
    from llama_index.core.agent.react.formatter import ReActChatFormatter
    from llama_index.core.llms import ChatMessage

    from docmind.model.llm import chat_prompt

    question = ChatMessage(role="user", content="And?")
    messages = ReActChatFormatter.from_defaults().format([], chat_history=[*history, question])
    return chat_prompt(tokenizer, messages)


def bench_memory(tmp: Path, tokenizer) -> dict:
    from llama_index.core.memory import ChatMemoryBuffer
    from llama_index.core.storage.chat_store import SimpleChatStore
    from llama_index.core.utils import get_tokenizer

    from docmind.agent.memory import SessionMemory
    from docmind.storage import Database, SQLiteChatStore

    encode = get_tokenizer()
    count = lambda text: len(encode(text))  # noqa: E731
    history = _history(count)
    SQLiteChatStore(tmp / "docmind.db").set_messages("s", history)
    json_path = tmp / "chat_store.json"
    json_path.write_text(json.dumps({"store": {"s": [
        {**m.model_dump(mode="json"), "additional_kwargs": {}} for m in history
    ]}}))

    def ours() -> int:
        db = Database(tmp / "docmind.db")  # a fresh connection each time: a cold session load
        memory = SessionMemory.for_session(SQLiteChatStore(db), "s", count, token_limit=HISTORY_TOKENS)
        kept = memory.get()
        _prompt(kept, tokenizer)
        db.close()
        return len(kept)

    def stock() -> int:
        store = SimpleChatStore.from_persist_path(str(json_path))
        memory = ChatMemoryBuffer.from_defaults(chat_store=store, chat_store_key="s", token_limit=HISTORY_TOKENS)
        kept = memory.get()
        _prompt(kept, tokenizer)
        return len(kept)

    def ours_load_only() -> int:
        db = Database(tmp / "docmind.db")
        kept = SessionMemory.for_session(SQLiteChatStore(db), "s", count, token_limit=HISTORY_TOKENS).get()
        db.close()
        return len(kept)

    def timed(fn) -> tuple[float, int]:
        fn()
        runs = []
        for _ in range(MEMORY_RUNS):
            started = time.perf_counter()
            kept = fn()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs) * 1000, kept

    ours_ms, ours_kept = timed(ours)
    load_ms, _ = timed(ours_load_only)
    stock_ms, stock_kept = timed(stock)
    return {
        "history_messages": len(history),
        "history_tokens": sum(m.additional_kwargs["tokens"] for m in history),
        "messages_kept": {"docmind": ours_kept, "stock": stock_kept},
        "docmind_load_ms": round(load_ms, 2),
        "docmind_load_and_prompt_ms": round(ours_ms, 2),
        "stock_load_and_prompt_ms": round(stock_ms, 2),
        "speedup_vs_stock": round(stock_ms / ours_ms, 1),
        "goal_ms": 10,
    }


def _tiny_engine(tmp: Path):
    from tests.fixtures.tiny_model import build_tiny_qwen3

    from docmind.config import load_settings
    from docmind.model.engine import GenerationEngine
    from docmind.model.loading import load_model

    path = build_tiny_qwen3(tmp / "tiny")
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = 32768
    (path / "config.json").write_text(json.dumps(config))
    loaded = load_model(load_settings(model_path=path, quantization="none", data_dir=tmp))
    return GenerationEngine(loaded.model, loaded.tokenizer)


def _service(tmp: Path, engine, answer_tokens: int):
    from docmind.agent.chat import ChatService, ModelHandle
    from docmind.config import load_settings
    from docmind.model.llm import EngineLLM

    llm = EngineLLM(engine, max_new_tokens=answer_tokens, temperature=0.0)
    handle = ModelHandle(llm=llm, count_tokens=lambda t: len(engine.tokenize(t)) if t else 0,
                         context_window=engine.context_window)
    return ChatService(load_settings(data_dir=tmp), model=handle)


async def _turn(service, session_id, question) -> tuple[float, object]:
    from docmind.agent.events import AnswerToken, Done, ThinkingToken

    started = time.perf_counter()
    first = None
    done = None
    async for event in service.chat(session_id, question):
        if first is None and isinstance(event, (AnswerToken, ThinkingToken)):
            first = time.perf_counter() - started
        if isinstance(event, Done):
            done = event
    return first if first is not None else done.seconds, done


async def bench_ttft(tmp: Path, engine) -> dict:
    service = _service(tmp / "ttft", engine, ANSWER_TOKENS)
    question = "Please summarise what the quarterly report says about revenue, costs and offices. " * 6
    session_id = service.sessions.create().id
    ttfts, prompt_tokens = [], []
    for turn in range(TURNS):
        ttft, done = await _turn(service, session_id, f"Turn {turn}: {question}")
        ttfts.append(ttft)
        prompt_tokens.append(done.prompt_tokens)
    return {
        "turn_1_ms": round(ttfts[0] * 1000, 1),
        "turn_20_ms": round(ttfts[-1] * 1000, 1),
        "ratio": round(ttfts[-1] / ttfts[0], 2),
        "turn_1_prompt_tokens": prompt_tokens[0],
        "turn_20_prompt_tokens": prompt_tokens[-1],
        "goal_ratio": 1.5,
    }


async def bench_concurrency(tmp: Path, engine) -> dict:
    service = _service(tmp / "concurrency", engine, ANSWER_TOKENS * 2)

    async def run(n: int) -> float:
        started = time.perf_counter()
        results = await asyncio.gather(*(_turn(service, None, f"Question {i} about the report?") for i in range(n)))
        seconds = time.perf_counter() - started
        return sum(done.completion_tokens for _, done in results) / seconds

    await run(1)  # warm up
    one = await run(1)
    five = await run(CONCURRENT)
    return {"one_session_tok_s": round(one, 1), "five_sessions_tok_s": round(five, 1),
            "ratio": round(five / one, 2), "goal_ratio": 3.5}


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        engine = _tiny_engine(tmp)
        try:
            result = {
                "memory_65536_tokens": bench_memory(tmp, engine.tokenizer),
                "ttft_turn_20_vs_1": asyncio.run(bench_ttft(tmp, engine)),
                "concurrent_5_vs_1": asyncio.run(bench_concurrency(tmp, engine)),
                "model": "tiny random-weight Qwen3 (2 layers, hidden 64), CPU",
            }
        finally:
            engine.shutdown()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
