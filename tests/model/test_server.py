"""``ServerLLM`` against a real ``transformers serve`` process over the tiny model, through real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.llms import ChatMessage

from docmind.config import load_settings
from docmind.model.server import DEFAULT_CONTEXT_WINDOW, ModelServerError, check_connection, probe
from docmind.model.server_llm import connect_server, estimate_tokens
from docmind.model.thinking import CLOSE_TAG, OPEN_TAG, split_thinking
from tests.fixtures.model_server import KeyCheckingProxy, free_port, start_transformers_serve
from tests.fixtures.thinking_model import build_always_thinking_model

KEY = "team-secret"
QUESTION = [ChatMessage(role="user", content="What does the report say about revenue?")]


def server_settings(data_dir: Path, base_url: str, model: str = "", **extra):
    return load_settings(data_dir=data_dir, llm_base_url=base_url, llm_model=model, **extra)


@pytest.fixture
def proxy(served_tiny_model):
    proxy = KeyCheckingProxy(served_tiny_model.base_url, KEY).start()
    yield proxy
    proxy.stop()


async def collect(llm, messages=QUESTION, **kwargs) -> tuple[list[str], object]:
    deltas, raw = [], None
    async for chunk in await llm.astream_chat(messages, **kwargs):
        deltas.append(chunk.delta)
        raw = chunk.raw or raw
    return deltas, raw


def test_probe_lists_the_served_model_and_picks_it(data_dir, served_tiny_model):
    info = probe(server_settings(data_dir, served_tiny_model.base_url))
    assert info.models == [served_tiny_model.model]
    assert info.model == served_tiny_model.model
    backend = connect_server(server_settings(data_dir, served_tiny_model.base_url))
    assert backend.context_window == DEFAULT_CONTEXT_WINDOW  # transformers serve reports none
    # the model id is a local folder with a tokenizer.json: counts are real tokens, not the estimate
    text = "Revenue grew by 12 percent in the third quarter."
    assert backend.count_tokens(text) != estimate_tokens(text)
    assert backend.count_tokens(text) > 0


def test_streams_an_answer_with_the_servers_usage(data_dir, served_tiny_model):
    llm = connect_server(server_settings(data_dir, served_tiny_model.base_url, max_new_tokens=None)).llm
    deltas, raw = asyncio.run(collect(llm, max_new_tokens=12))
    assert len([d for d in deltas if d]) > 1, "the answer arrives in pieces"
    assert raw["usage_from_server"] is True
    assert raw["completion_tokens"] == 12
    assert raw["prompt_tokens"] > 5
    assert raw["finish_reason"] == "length"


def test_sync_chat_works_too(data_dir, served_tiny_model):
    llm = connect_server(server_settings(data_dir, served_tiny_model.base_url)).llm
    response = llm.chat(QUESTION, max_new_tokens=5)
    assert response.message.content
    assert response.raw["completion_tokens"] == 5


def test_reasoning_content_becomes_a_think_block(data_dir, tiny_model_dir, tmp_path):
    """A thinking model's server sends ``reasoning_content``; the LLM wraps it in ``<think>`` tags."""
    thinking_dir = build_always_thinking_model(tiny_model_dir, tmp_path / "thinking-model")
    served = start_transformers_serve(thinking_dir, tmp_path / "serve.log")
    try:
        llm = connect_server(server_settings(data_dir, served.base_url)).llm
        deltas, _ = asyncio.run(collect(llm, max_new_tokens=10))
    finally:
        served.stop()
    text = "".join(deltas)
    assert text.startswith(OPEN_TAG) and text.rstrip().endswith(CLOSE_TAG)
    thinking, answer = split_thinking(text)
    assert thinking.strip() and not answer.strip()


def test_closing_the_stream_closes_the_http_stream(data_dir, proxy, served_tiny_model):
    """Stop: the consumer closes the generator after two pieces; the proxy sees its client leave."""
    settings = server_settings(data_dir, proxy.url(), served_tiny_model.model, llm_api_key=KEY)
    llm = connect_server(settings).llm

    async def stop_early() -> int:
        pieces = 0
        stream = await llm.astream_chat(QUESTION, max_new_tokens=2000)
        async for chunk in stream:
            pieces += bool(chunk.delta)
            if pieces == 2:
                break
        await stream.aclose()
        return pieces

    assert asyncio.run(stop_early()) == 2
    for _ in range(100):
        if proxy.counters.closed_by_client:
            break
        asyncio.run(asyncio.sleep(0.1))
    assert proxy.counters.streams == 1
    assert proxy.counters.closed_by_client == 1


def test_wrong_key_is_refused_with_what_to_check(data_dir, proxy, served_tiny_model):
    settings = server_settings(data_dir, proxy.url(), served_tiny_model.model, llm_api_key="wrong")
    with pytest.raises(ModelServerError, match="refused the API key \\(HTTP 401\\)"):
        probe(settings)
    with pytest.raises(ModelServerError, match="HTTP 401"):
        check_connection(settings)
    good = server_settings(data_dir, proxy.url(), served_tiny_model.model, llm_api_key=KEY)
    assert check_connection(good).startswith("Connected:")
    assert proxy.counters.refused == 2


def test_unreachable_server_is_retried_then_explained(data_dir, caplog):
    settings = server_settings(data_dir, f"http://127.0.0.1:{free_port()}/v1", "some-model")
    with pytest.raises(ModelServerError, match="cannot be reached"):
        probe(settings)
    retries = [r for r in caplog.records if "model server connection failed" in r.getMessage()]
    assert len(retries) == 2, "three attempts in all, then the error"
    # the backend still builds (the server may come up later); each question reports the problem
    llm = connect_server(settings).llm
    with pytest.raises(ModelServerError, match="cannot be reached"):
        asyncio.run(collect(llm))


def test_wrong_url_and_unknown_model(data_dir, served_tiny_model):
    wrong_path = f"http://127.0.0.1:{served_tiny_model.port}/nothing-here"
    with pytest.raises(ModelServerError, match="404 Not Found.*Check the URL"):
        probe(server_settings(data_dir, wrong_path))
    with pytest.raises(ModelServerError, match="no model named 'qwen9:7b'.*offers"):
        probe(server_settings(data_dir, served_tiny_model.base_url, "qwen9:7b"))
    llm = connect_server(server_settings(data_dir, served_tiny_model.base_url)).llm.model_copy(
        update={"model_name": "qwen9:7b"})
    with pytest.raises(ModelServerError, match="refused the request \\(HTTP 4"):
        asyncio.run(collect(llm))


def test_timeout_is_explained(data_dir, proxy, served_tiny_model):
    settings = server_settings(data_dir, proxy.url("/slow"), served_tiny_model.model, llm_api_key=KEY,
                               llm_timeout_seconds=1.0)
    with pytest.raises(ModelServerError, match="did not answer within 1 s"):
        probe(settings)


def test_a_server_that_does_not_stream_still_answers(data_dir, proxy, served_tiny_model):
    settings = server_settings(data_dir, proxy.url("/nostream"), served_tiny_model.model, llm_api_key=KEY)
    llm = connect_server(settings).llm
    deltas, raw = asyncio.run(collect(llm, max_new_tokens=6))
    assert "".join(deltas).strip()
    assert raw["completion_tokens"] == 6
    assert proxy.counters.streams == 0, "nothing was streamed: the answer came whole"


@pytest.mark.parametrize(("mode", "window"), [("/vllm", 4608), ("/llamacpp", DEFAULT_CONTEXT_WINDOW)])
def test_the_context_window_comes_from_the_model_list(data_dir, proxy, served_tiny_model, mode, window):
    """vLLM's ``max_model_len`` is the server's window and bounds the memory; llama.cpp's ``n_ctx_train`` is the
    model's training length, not the window the server runs with (``-c``), so it is not used."""
    from docmind.agent.chat import RESERVED_TOKENS, ChatService, QuestionTooLongError

    settings = server_settings(data_dir, proxy.url(mode), llm_api_key=KEY)
    backend = connect_server(settings)
    assert backend.context_window == window
    assert backend.llm.metadata.context_window == window
    service = ChatService(settings)

    async def budget_and_long_question() -> tuple[int, BaseException | None]:
        model, problem = await service.model()
        assert not problem
        if service.history_budget(model) > 2000:  # the question would fit: nothing to refuse
            return service.history_budget(model), None
        try:
            await anext(service.chat(None, "revenue " * 2000))
        except QuestionTooLongError as error:
            return service.history_budget(model), error
        return service.history_budget(model), None

    budget, refused = asyncio.run(budget_and_long_question())
    assert budget == min(service.token_limit, window - RESERVED_TOKENS)
    if mode == "/vllm":  # a question longer than the room the server's window leaves is refused before sending
        assert refused is not None and f"has room for {budget}" in str(refused)
    set_by_hand = server_settings(data_dir, proxy.url(mode), llm_api_key=KEY, llm_context_window=8192)
    assert connect_server(set_by_hand).context_window == 8192, "the llm_context_window setting wins"
