"""EngineLLM: the LlamaIndex LLM over the shared engine (chat template, streaming, async batching)."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import ChatMessage

from docmind.model.engine import GenerationEngine
from docmind.model.llm import EngineLLM, chat_prompt


@pytest.fixture
def llm(loaded_tiny):
    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer)
    yield EngineLLM(engine, model_name="tiny", temperature=0.0, max_new_tokens=16)
    engine.shutdown()


MESSAGES = [ChatMessage(role="system", content="You answer from documents."),
            ChatMessage(role="user", content="What is on page 3?")]


def test_chat_applies_the_template_and_reports_tokens(llm: EngineLLM, loaded_tiny) -> None:
    prompt = chat_prompt(loaded_tiny.tokenizer, MESSAGES, enable_thinking=False)
    assert prompt.startswith("<|im_start|>system\nYou answer") and prompt.endswith("<think>\n\n</think>\n\n")
    response = llm.chat(MESSAGES, enable_thinking=False)
    direct = llm.complete(prompt, formatted=True)
    assert response.message.content == direct.text
    assert response.raw["prompt_tokens"] == len(llm.engine.tokenize(prompt))
    assert response.raw["completion_tokens"] == 16 or response.raw["finish_reason"] == "stop"


def test_stream_chat_deltas_add_up(llm: EngineLLM) -> None:
    chunks = list(llm.stream_chat(MESSAGES))
    assert "".join(c.delta for c in chunks) == chunks[-1].message.content == llm.chat(MESSAGES).message.content


def test_thinking_prompt_gets_a_balanced_open_tag(llm: EngineLLM) -> None:
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    assert llm.complete(prompt, formatted=True).text.startswith("<think>\n")
    assert "".join(c.delta for c in llm.stream_complete(prompt, formatted=True)).startswith("<think>\n")


async def test_concurrent_async_chats_are_batched(llm: EngineLLM) -> None:
    questions = [f"Question number {i} about the report?" for i in range(5)]

    async def one(q: str) -> str:
        stream = await llm.astream_chat([ChatMessage(role="user", content=q)])
        text = ""
        async for chunk in stream:
            text += chunk.delta
        return text

    streamed = await asyncio.gather(*(one(q) for q in questions))
    assert llm.engine.peak_batch >= 3
    whole = await asyncio.gather(*(llm.achat([ChatMessage(role="user", content=q)]) for q in questions))
    assert streamed == [r.message.content for r in whole]
    assert (await llm.acomplete("hello")).text


async def test_react_agent_answers_with_the_engine_s_text(llm: EngineLLM) -> None:
    from llama_index.core.agent.workflow import ReActAgent

    served: list = []  # every request the engine decodes, seen from inside the engine
    llm.engine.on_logits = lambda handles, logits: served.extend(h for h in handles if h not in served)
    agent = ReActAgent(tools=[], llm=llm)
    result = await agent.run("What is on page 3?", max_iterations=2)
    # The random model writes no "Thought:"/"Action:", so its first output is the final answer (STACK.md).
    assert len(served) == 1, "one LLM call, through the shared engine"
    generated = served[0].result
    assert generated.completion_tokens > 0 and "What is on page 3?" in llm.engine.tokenizer.decode(
        served[0].prompt_ids)
    assert result.response.content.strip() == generated.text.strip()


def test_every_wait_is_bounded_when_the_engine_hangs(loaded_tiny) -> None:
    import threading

    from docmind.model.errors import EngineStalledError

    engine = GenerationEngine(loaded_tiny.model, loaded_tiny.tokenizer, stall_seconds=1)
    release = threading.Event()
    engine.on_logits = lambda handles, logits: release.wait(60)  # a step that never ends
    llm = EngineLLM(engine, model_name="tiny", temperature=0.0, max_new_tokens=4)
    try:
        with pytest.raises(EngineStalledError, match="produced nothing"):
            llm.chat(MESSAGES)
        with pytest.raises(EngineStalledError):
            list(llm.stream_chat(MESSAGES))

        async def astream() -> str:
            return "".join([c.delta async for c in await llm.astream_chat(MESSAGES)])

        with pytest.raises(EngineStalledError):
            asyncio.run(astream())
        engine.on_logits = None
        release.set()
        assert llm.chat(MESSAGES).raw["completion_tokens"] == 4, "the engine serves again once the step ends"
    finally:
        release.set()
        engine.shutdown()
