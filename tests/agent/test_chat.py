"""ReAct parsing, honest citations, fallback and bad input, with a scripted LLM over a real library."""

from __future__ import annotations

import asyncio
import gc
import logging
import traceback

import pytest

from docmind.agent.chat import (
    APP_WORDING, FALLBACK_TOO_LONG, ChatService, EmptyQuestionError, QuestionTooLongError,
)
from docmind.agent.events import (
    AnswerToken,
    Citations,
    Done,
    Notice,
    ThinkingToken,
    ToolCalled,
    TurnFailed,
    TurnStarted,
)
from docmind.agent.sessions import UnknownSessionError
from docmind.cache.retrieval import Searcher
from docmind.model.errors import EngineStoppedError, ModelError, ModelSwitchedError, PromptTooLongError
from docmind.storage.sessions import ChatLog
from tests.agent.conftest import run_turn, scripted_service

SEARCH = 'Thought: I should search.\nAction: search_documents\nAction Input: {"query": "revenue growth third quarter"}'
ANSWER = "Thought: I know the answer.\nAnswer: Revenue grew by 12 percent [1], not by 50 percent [7]."


def _done(events) -> Done:
    assert isinstance(events[0], TurnStarted)
    assert isinstance(events[-1], Done)
    return events[-1]


async def test_react_turn_cites_only_retrieved_passages(settings_with_library):
    service, llm = scripted_service(settings_with_library, SEARCH, ANSWER)
    events = await run_turn(service, None, "How much did revenue grow?")
    done = _done(events)
    assert done.mode == "agent"
    assert done.answer == "Revenue grew by 12 percent [1], not by 50 percent."  # [7] was never retrieved
    assert [p.number for p in done.citations] == [1]
    assert done.citations[0].source.endswith("report.md") and "12 percent" in done.citations[0].text
    assert any(isinstance(e, ToolCalled) and e.tool == "search_documents" for e in events)
    assert [e for e in events if isinstance(e, Citations)][0].passages == done.citations
    assert "Thought: I should search." in "".join(e.text for e in events if isinstance(e, ThinkingToken))
    assert done.prompt_tokens == 200 and done.completion_tokens > 0

    # the observation reached the model as numbered passages with file names
    observation = llm.calls[1][-1].content
    assert "[1] (report.md)" in observation and "12 percent" in observation

    # memory holds the question and the final answer only: no scratchpad
    stored = ChatLog(service.db).messages(done.session_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1].content == done.answer
    assert "Action" not in stored[1].content and "Observation" not in stored[1].content
    assert stored[1].extra["citations"][0]["source"].endswith("report.md")
    # every file the search returned is named as consulted, cited or not
    assert done.consulted and done.consulted[0].endswith("report.md") and len(set(done.consulted)) == len(done.consulted)
    assert {p.source for p in done.citations} <= set(done.consulted) and stored[1].extra["consulted"] == done.consulted
    assert ChatLog(service.db).session(done.session_id).title == "How much did revenue grow?"


async def test_irrelevant_passages_are_not_shown(settings_with_library):
    search = 'Thought: search.\nAction: search_documents\nAction Input: {"query": "submarine propeller torque"}'
    service, llm = scripted_service(settings_with_library, search, "Thought: done.\nAnswer: It is 5 Nm [1].")
    done = _done(await run_turn(service, None, "What torque does the submarine propeller need?"))
    assert "No relevant passages" in llm.calls[1][-1].content
    assert done.citations == []
    assert "[1]" not in done.answer
    assert "found nothing relevant" in done.answer


async def test_malformed_tool_arguments_are_recovered(settings_with_library):
    broken = "Thought: search.\nAction: search_documents\nAction Input: {'q': 'revenue grew'}"
    service, llm = scripted_service(settings_with_library, broken, "Thought: ok.\nAnswer: It grew 12 percent [1].")
    events = await run_turn(service, None, "How much did revenue grow?")
    done = _done(events)
    assert [e.arguments for e in events if isinstance(e, ToolCalled)] == [{"q": "revenue grew"}]
    assert "12 percent" in llm.calls[1][-1].content  # the misnamed argument still searched
    assert done.mode == "agent" and [p.number for p in done.citations] == [1]


async def test_invalid_react_falls_back_to_passages(settings_with_library):
    broken = "Thought: I will search.\nAction: search_documents\nAction Input: none at all"
    direct = "Revenue grew by 12 percent [1]."
    service, llm = scripted_service(settings_with_library, broken, broken, broken, direct, max_iterations=3)
    events = await run_turn(service, None, "How much did revenue grow?")
    done = _done(events)
    assert done.mode == "fallback"
    assert len(llm.calls) == 4  # three agent attempts, then one direct answer: no loop
    assert "Passages:" in llm.calls[3][-1].content and "[1] (report.md)" in llm.calls[3][-1].content
    assert done.answer == direct and done.citations[0].source.endswith("report.md")
    assert any(isinstance(e, Notice) and e.kind == "fallback" for e in events)


async def test_notes_that_outgrow_the_context_fall_back_to_the_passages_found(settings_with_library):
    """The agent's scratchpad (the passages it read) is not bounded by the history budget; when its next
    prompt no longer fits (seen in the soak on a 4,096-token model), answer from what it found."""
    direct = "Revenue grew by 12 percent [1]."
    too_long = PromptTooLongError("The prompt is 4457 tokens but the model's context holds 4096.")
    service, llm = scripted_service(settings_with_library, SEARCH, too_long, direct)
    events = await run_turn(service, None, "How much did revenue grow?")
    done = _done(events)
    assert done.mode == "fallback" and done.answer == direct and len(llm.calls) == 3
    assert "Passages:" in llm.calls[2][-1].content and done.citations[0].source.endswith("report.md")
    assert [e.text for e in events if isinstance(e, Notice) and e.kind == "fallback"] == [FALLBACK_TOO_LONG]
    assert not any(isinstance(e, TurnFailed) for e in events)


@pytest.mark.parametrize("error", [EngineStoppedError("The engine was shut down."), ModelSwitchedError(),
                                   PromptTooLongError("The prompt is 40000 tokens; the model takes 32768."),
                                   RuntimeError("engine exploded")])
async def test_a_failing_model_is_an_error_not_a_fallback(settings_with_library, caplog, error):
    service, llm = scripted_service(settings_with_library, error)
    with caplog.at_level(logging.WARNING, logger="docmind.agent.chat"):
        events = await run_turn(service, None, "How much did revenue grow?")
    assert isinstance(events[0], TurnStarted) and isinstance(events[-1], TurnFailed)
    assert not any(isinstance(e, (Done, Notice)) for e in events)  # no fallback answer, no "fallback" notice
    assert str(error) in events[-1].message and len(llm.calls) == 1
    if isinstance(error, ModelSwitchedError):  # said plainly, as the reason, not as a model failure
        assert events[-1].message == str(ModelSwitchedError())
    (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
    if isinstance(error, ModelError):  # explained by its own message: one line, no traceback
        assert record.levelno == logging.WARNING and str(error) in record.getMessage() and not record.exc_info
    else:  # a bug: logged with its traceback
        assert record.levelno == logging.ERROR and record.exc_info[1] is error
    stored = ChatLog(service.db).messages(events[0].session_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "interrupted")]
    assert stored[0].content == "How much did revenue grow?"
    assert stored[1].extra["error"] == events[-1].message


async def test_a_bug_in_a_tool_is_an_error_not_an_observation(settings_with_library, caplog):
    class BrokenSearcher(Searcher):
        def search(self, query, k=5, mode="hybrid", collections=None):
            raise KeyError("chunk 42")

    service, llm = scripted_service(settings_with_library, SEARCH, ANSWER,
                                    searcher=BrokenSearcher(settings_with_library))
    with caplog.at_level(logging.ERROR, logger="docmind.agent.chat"):
        events = await run_turn(service, None, "How much did revenue grow?")
    assert isinstance(events[-1], TurnFailed) and "KeyError" in events[-1].message
    # The error is not answered as an observation: the agent's next step may already have asked the model
    # (its workflow runs on while the event reaches the service), but nothing the model says reaches the user.
    assert not [e for e in events if isinstance(e, AnswerToken)] and len(llm.calls) <= 2
    record = next(r for r in caplog.records if r.exc_info)
    assert isinstance(record.exc_info[1], KeyError)
    assert any(frame.name == "search" for frame in traceback.extract_tb(record.exc_info[2]))
    assert ChatLog(service.db).messages(events[0].session_id)[0].content == "How much did revenue grow?"


async def test_a_failing_direct_answer_after_malformed_react_is_an_error(settings_with_library):
    broken = "Thought: I will search.\nAction: search_documents\nAction Input: none at all"
    service, _ = scripted_service(settings_with_library, broken, broken, broken, EngineStoppedError("stopped"),
                                  max_iterations=3)
    events = await run_turn(service, None, "How much did revenue grow?")
    assert any(isinstance(e, Notice) and e.kind == "fallback" for e in events)
    assert isinstance(events[-1], TurnFailed) and "stopped" in events[-1].message


async def test_no_documents_answers_from_the_model_and_says_so(empty_settings):
    service, _ = scripted_service(empty_settings, "Thought: easy.\nAnswer: Paris is the capital of France.")
    events = await run_turn(service, None, "What is the capital of France?")
    done = _done(events)
    assert any(isinstance(e, Notice) and e.kind == "no-documents" for e in events)
    assert done.answer.startswith("_No documents are loaded yet") and "Paris" in done.answer


async def test_model_not_downloaded_gives_a_labelled_search_result(settings_with_library, tmp_path):
    settings = settings_with_library.model_copy(update={"model_path": tmp_path / "no-model-here"})
    service = ChatService(settings)
    events = await run_turn(service, None, "How much did revenue grow?")
    done = _done(events)
    notice = next(e for e in events if isinstance(e, Notice))
    assert notice.kind == "no-model" and "no-model-here" in notice.text and "search results" in notice.text
    assert done.mode == "search"
    assert "search result" in done.answer.lower() and "docmind model download" in done.answer
    assert done.citations and done.citations[0].source.endswith("report.md")
    assert ChatLog(service.db).messages(done.session_id)[1].status == "complete"


async def test_in_the_app_the_search_result_points_to_the_model_tab(settings_with_library, tmp_path):
    settings = settings_with_library.model_copy(update={"model_path": tmp_path / "no-model-here"})
    events = await run_turn(ChatService(settings, wording=APP_WORDING), None, "How much did revenue grow?")
    notice, done = next(e for e in events if isinstance(e, Notice)), _done(events)
    for text in (notice.text, done.answer):
        assert "Model** tab" in text and "docmind" not in text and "no-model-here" not in text


async def test_bad_input_is_refused_before_anything_is_stored(settings_with_library):
    service, llm = scripted_service(settings_with_library, ANSWER)
    with pytest.raises(EmptyQuestionError, match="empty"):
        await run_turn(service, None, "   \n ")
    with pytest.raises(UnknownSessionError, match="docmind sessions list"):
        await run_turn(service, "nope", "hello")
    with pytest.raises(QuestionTooLongError, match="Shorten"):
        await run_turn(service, None, "word " * 40000)
    assert service.sessions.list() == [] and llm.calls == []


async def test_thinking_is_stored_but_never_fed_back(settings_with_library):
    first = "<think>my secret reasoning</think>Thought: done.\nAnswer: Hello there."
    service, llm = scripted_service(settings_with_library, first, "Thought: done.\nAnswer: Again.")
    done = _done(await run_turn(service, None, "Say hello"))
    assert done.answer == "Hello there." and "my secret reasoning" in done.thinking
    stored = ChatLog(service.db).messages(done.session_id)[1]
    assert "my secret reasoning" in stored.thinking and "secret" not in stored.content
    await run_turn(service, done.session_id, "Say it again")
    second_prompt = "\n".join(m.content or "" for m in llm.calls[1])
    assert "Hello there." in second_prompt and "Say hello" in second_prompt
    assert "secret" not in second_prompt
    assert not service.sessions.search("secret")  # nor searchable


async def test_cancel_keeps_the_partial_answer_marked_interrupted(settings_with_library):
    long_answer = "Thought: ok.\nAnswer: " + " ".join(f"word{i}" for i in range(400))
    service, _ = scripted_service(settings_with_library, long_answer, "Thought: ok.\nAnswer: Fine.", delay=0.01)
    seen: list = []

    async def consume() -> None:
        async for event in service.chat(None, "Tell me a long story"):
            seen.append(event)

    task = asyncio.create_task(consume())
    while sum(isinstance(e, AnswerToken) for e in seen) < 150:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    session_id = seen[0].session_id
    stored = ChatLog(service.db).messages(session_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "interrupted")]
    assert stored[1].content.startswith("word0 word1")
    done = _done(await run_turn(service, session_id, "Go on"))  # the session continues
    assert done.answer == "Fine."
    statuses = [m.status for m in ChatLog(service.db).messages(session_id)]
    assert statuses == ["complete", "interrupted", "complete", "complete"]


async def test_closing_the_stream_stores_the_partial_answer_before_it_returns(settings_with_library):
    long_answer = "Thought: ok.\nAnswer: " + " ".join(f"word{i}" for i in range(400))
    service, _ = scripted_service(settings_with_library, long_answer, delay=0.01)
    stream = service.chat(None, "Tell me a long story")
    session_id = (await anext(stream)).session_id
    while not isinstance(await anext(stream), AnswerToken):
        pass
    await stream.aclose()  # what a closed page or a stopped UI turn does
    assert [m.status for m in ChatLog(service.db).messages(session_id)] == ["complete", "interrupted"]


async def test_sessions_are_isolated_under_concurrency(settings_with_library):
    def echo(messages):  # repeats the last word of every question it can see
        heard = [m.content.split()[-1] for m in messages if m.role == "user"]
        return "Thought: done.\nAnswer: you said " + " ".join(heard)

    service, _ = scripted_service(settings_with_library, echo, delay=0.005)
    sessions = [service.sessions.create().id for _ in range(5)]

    async def two_turns(i: int, session_id: str) -> None:
        await run_turn(service, session_id, f"first question token{i}a")
        await run_turn(service, session_id, f"second question token{i}b")

    await asyncio.gather(*(two_turns(i, s) for i, s in enumerate(sessions)))
    for i, session_id in enumerate(sessions):
        stored = ChatLog(service.db).messages(session_id)
        assert [m.content for m in stored] == [
            f"first question token{i}a", f"you said token{i}a",
            f"second question token{i}b", f"you said token{i}a token{i}b",
        ]


async def test_a_session_answering_elsewhere_is_busy_not_corrupted(settings_with_library):
    from docmind.agent.turns import SessionBusyError, SessionLock

    service, llm = scripted_service(settings_with_library, ANSWER)
    session_id = service.sessions.create().id
    other_process = SessionLock(service.sessions.log, session_id)  # another lock file handle, as another process has
    await other_process.acquire()
    try:
        with pytest.raises(SessionBusyError, match="still answering"):
            await run_turn(service, session_id, "How much did revenue grow?")
    finally:
        other_process.release()
    assert ChatLog(service.db).messages(session_id) == [] and llm.calls == []
    assert _done(await run_turn(service, session_id, "How much did revenue grow?")).answer


async def test_the_session_lock_map_holds_running_turns_only(settings_with_library):
    service, _ = scripted_service(settings_with_library, "Thought: done.\nAnswer: Fine.")
    for _ in range(30):
        await run_turn(service, None, "Say something")
    gc.collect()
    assert len(service._session_locks) == 0  # 30 sessions answered, none left behind
    running = service.chat(None, "Say something")
    await anext(running)  # the turn has started and holds its session
    assert len(service._session_locks) == 1
    await running.aclose()
    gc.collect()
    assert len(service._session_locks) == 0
