"""Chat turns answered by a real model server (``transformers serve`` over the tiny model) through the
unchanged agent: streaming, Stop, a server that dies mid-answer, a server that is down, 5 sessions at once."""

from __future__ import annotations

import asyncio

from docmind.agent.chat import ChatService
from docmind.agent.events import AnswerToken, Done, ThinkingToken, TurnFailed
from docmind.config import load_settings
from tests.fixtures.model_server import KeyCheckingProxy, free_port, start_transformers_serve

KEY = "team-secret"


def server_service(settings_with_library, base_url: str, model: str, **extra) -> ChatService:
    settings = load_settings(data_dir=settings_with_library.data_dir, llm_base_url=base_url, llm_model=model,
                             **extra)
    return ChatService(settings)


async def turn_events(service: ChatService, question: str, session_id: str | None = None) -> list:
    return [event async for event in service.chat(session_id, question)]


def test_a_turn_through_the_server_is_stored_with_the_servers_usage(settings_with_library, served_tiny_model):
    service = server_service(settings_with_library, served_tiny_model.base_url, served_tiny_model.model,
                             max_new_tokens=24)
    events = asyncio.run(turn_events(service, "How much did revenue grow?"))
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    assert any(isinstance(e, (AnswerToken, ThinkingToken)) for e in events), "the answer streamed"
    assert done.completion_tokens >= 24 and done.prompt_tokens > 0  # the server's usage, summed over calls
    messages = service.sessions.messages(done.session_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "How much did revenue grow?"
    assert messages[1].status == "complete" and messages[1].content == done.answer


def test_stop_keeps_the_partial_answer_and_closes_the_http_stream(settings_with_library, served_tiny_model):
    proxy = KeyCheckingProxy(served_tiny_model.base_url, KEY).start()
    try:
        service = server_service(settings_with_library, proxy.url(), served_tiny_model.model, llm_api_key=KEY,
                                 max_new_tokens=2000)

        async def stop_after_some_tokens() -> tuple[str, str]:
            session_id, streamed = None, ""
            stream = service.chat(None, "Tell me everything about the report.")
            async for event in stream:
                session_id = getattr(event, "session_id", session_id)
                if isinstance(event, (AnswerToken, ThinkingToken)):
                    streamed += event.text
                    if len(streamed) > 20:
                        break
            await stream.aclose()  # what the UI's Stop does
            return session_id, streamed

        session_id, streamed = asyncio.run(stop_after_some_tokens())
        for _ in range(100):
            if proxy.counters.closed_by_client:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert proxy.counters.closed_by_client == 1, "the HTTP stream to the server was closed"
    finally:
        proxy.stop()
    answer = service.sessions.messages(session_id)[-1]
    assert answer.status == "interrupted"
    assert (answer.content + answer.thinking).strip(), "what was streamed is kept"


def test_a_server_that_dies_mid_answer_keeps_the_partial_answer_marked(settings_with_library, tiny_model_dir,
                                                                       tmp_path):
    served = start_transformers_serve(tiny_model_dir, tmp_path / "serve.log")
    try:
        service = server_service(settings_with_library, served.base_url, served.model, max_new_tokens=2000)

        async def kill_mid_answer() -> list:
            events, killed = [], False
            async for event in service.chat(None, "Tell me everything about the report."):
                events.append(event)
                if isinstance(event, (AnswerToken, ThinkingToken)) and not killed:
                    served.stop()
                    killed = True
            return events

        events = asyncio.run(kill_mid_answer())
    finally:
        served.stop()
    failed = events[-1]
    assert isinstance(failed, TurnFailed), failed
    assert "cannot be reached or closed the connection" in failed.message
    messages = service.sessions.messages(failed.session_id)
    assert messages[0].content == "Tell me everything about the report."
    assert messages[1].status == "interrupted"
    assert messages[1].content + messages[1].thinking, "the partial answer is kept"
    assert "closed the connection" in messages[1].extra["error"]


def test_a_server_that_is_down_fails_the_turn_and_keeps_the_question(settings_with_library):
    service = server_service(settings_with_library, f"http://127.0.0.1:{free_port()}/v1", "qwen3")
    events = asyncio.run(turn_events(service, "Is anyone there?"))
    assert isinstance(events[-1], TurnFailed)
    assert "cannot be reached" in events[-1].message and "Check that it is running" in events[-1].message
    messages = service.sessions.messages(events[-1].session_id)
    assert messages[0].content == "Is anyone there?"


def test_five_sessions_answer_at_once_through_the_server(settings_with_library, served_tiny_model):
    sessions = 5
    proxy = KeyCheckingProxy(served_tiny_model.base_url, KEY).start()
    try:
        service = server_service(settings_with_library, proxy.url(), served_tiny_model.model, llm_api_key=KEY,
                                 max_new_tokens=96)

        async def all_at_once() -> list[list]:
            return await asyncio.gather(*(turn_events(service, f"Question number {n} about revenue?")
                                          for n in range(sessions)))

        results = asyncio.run(all_at_once())
    finally:
        proxy.stop()
    done = [events[-1] for events in results]
    assert all(isinstance(d, Done) for d in done), done
    assert len({d.session_id for d in done}) == sessions
    assert proxy.counters.peak_open_streams > 1, "the sessions' requests overlapped at the server"
    for d in done:
        question = service.sessions.messages(d.session_id)[0].content
        assert question.startswith("Question number")


def test_a_thought_sent_inline_lands_in_the_thinking_block(settings_with_library, served_tiny_model):
    """llama.cpp and Ollama stream ``<think>…</think>answer`` inside ``content``: the thought shows in the
    collapsed thinking block, live and when the chat is reopened, and the stored answer has no tags."""
    from docmind.ui.transcript import TurnView, history_from_stored

    proxy = KeyCheckingProxy(served_tiny_model.base_url, KEY).start()
    try:
        service = server_service(settings_with_library, proxy.url("/inline"), served_tiny_model.model,
                                 llm_api_key=KEY, max_new_tokens=24)
        events = asyncio.run(turn_events(service, "How much did revenue grow?"))
    finally:
        proxy.stop()
    done = events[-1]
    assert isinstance(done, Done), done
    thought = "".join(e.text for e in events if isinstance(e, ThinkingToken))
    assert thought.strip(), "the inline thought streamed as thinking"
    stored = service.sessions.messages(done.session_id)[-1]
    assert stored.thinking.strip() and stored.thinking.strip() in thought.strip()
    assert stored.content.strip(), "the text after </think> is the answer"
    for text in (stored.content, stored.thinking, done.answer):
        assert "<think>" not in text and "</think>" not in text
    live = TurnView(question="How much did revenue grow?")
    for event in events:
        live.apply(event)
    for shown in (live.messages(), history_from_stored(service.sessions.messages(done.session_id))):
        block = next(m for m in shown if (m.get("metadata") or {}).get("title", "").startswith("Thinking"))
        assert block["metadata"]["status"] == "done" and block["content"] == stored.thinking.strip()
        assert all("<think>" not in str(m["content"]) for m in shown)
