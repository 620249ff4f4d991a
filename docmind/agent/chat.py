"""One chat turn: ``async for event in ChatService(...).chat(session_id, text)``.

Each turn runs one ``ReActAgent`` with ``search_documents`` and ``list_documents`` over a working
copy of the session's memory, so its scratchpad never reaches the session: only the question and
the final answer (with its thinking and citations) are stored. When the small model's output is
not valid ReAct, the turn falls back to one direct answer from the retrieved passages; without a
model at all, the answer is the best passages, labelled as a search result. Any other failure
(the engine stopped, a prompt too long, a bug in a tool) is logged with its traceback and ends the
turn with a ``TurnFailed`` event; the question stays stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.agent.workflow import AgentInput, AgentOutput, AgentStream, ReActAgent, ToolCall, ToolCallResult
from llama_index.core.llms import LLM, ChatMessage, ChatResponse
from llama_index.core.storage.chat_store import SimpleChatStore
from llama_index.core.workflow.errors import WorkflowRuntimeError

from docmind.agent.citations import (
    Passage,
    TurnPassages,
    check_support,
    cited_json,
    format_passages,
    search_result_answer,
    support_json,
)
from docmind.agent.events import (
    MODE_AGENT,
    MODE_FALLBACK,
    MODE_SEARCH,
    AnswerReset,
    AnswerToken,
    ChatEvent,
    Citations,
    Done,
    Notice,
    ThinkingToken,
    ToolCalled,
    TurnFailed,
    TurnStarted,
)
from docmind.agent.memory import MESSAGE_OVERHEAD_TOKENS, SESSION_TOKEN_LIMIT, SessionMemory
from docmind.agent.sessions import Sessions
from docmind.agent.stream import StepSplitter
from docmind.agent.tools import DocumentSearch, make_tools
from docmind.agent.turns import SessionLock, TurnRecorder
from docmind.cache.collections import resolve_scope, session_scope, set_session_scope
from docmind.cache.retrieval import Searcher
from docmind.config import Settings, load_settings
from docmind.model.errors import ModelError, ModelSwitchedError, PromptTooLongError
from docmind.model.thinking import split_thinking, thinking_budget
from docmind.storage import open_database
from docmind.storage.chat import SQLiteChatStore

log = logging.getLogger(__name__)

MAX_ITERATIONS = 4
"""At most this many ReAct LLM calls per turn; then the turn falls back to one direct answer."""
REACT_GAVE_UP = "Max iterations of"
"""How LlamaIndex's ``WorkflowRuntimeError`` starts when the ReAct loop ran out of iterations."""
RESERVED_TOKENS = 3072
FALLBACK_PASSAGES = 5
"""Passages a direct answer reads at most: the agent may have read many more than fit in one prompt."""
FALLBACK_FORMAT = "The model did not follow the agent format; it answered directly instead."
FALLBACK_TOO_LONG = ("The passages the model read outgrew its context, so it answered directly from the "
                     "most relevant ones.")
"""Context kept free of history: system prompt, tool descriptions, scratchpad and the answer."""
MAX_QUESTION_CHARS = 20000
"""Without a model to count tokens, a question longer than this is refused."""

SYSTEM_PROMPT = """You are DocMind, an assistant that answers questions about the user's own documents, offline.
Use the search_documents tool to find passages before you answer a question about the documents.
Passages come numbered, like [1], with their file and page. Cite every statement you take from a passage
with its number in square brackets, like [1] or [2][3]. Cite only numbers that appear in the search results.
If the passages do not contain the answer, say that the documents do not cover it. Never invent sources."""

FALLBACK_PROMPT = """You are DocMind. Answer the user's question from the numbered passages below.
Cite each statement with the passage number in square brackets, like [1]. If the passages do not answer
the question, say so plainly."""

NO_PASSAGES_PROMPT = "You are DocMind, a helpful assistant. Answer the user's question concisely."

NOTICE_NO_MODEL = (
    "No language model is downloaded yet, so this is a search result, not a written answer. "
    "Run `docmind model download` (or choose a model in the app) to get answers."
)
NOTICE_NO_MODEL_APP = (
    "No language model is downloaded yet, so this is a search result, not a written answer. "
    "Open the **Model** tab to download one and get written answers."
)
NOTICE_NO_DOCUMENTS_EITHER = "No documents are loaded either: add some with `docmind ingest PATH` or the Documents tab."
NOTICE_NO_DOCUMENTS_EITHER_APP = "No documents are loaded either: add some in the **Documents** tab."
NOTICE_SEARCH_ONLY = "Until a model is ready, answers are search results: the most relevant passages."
NOTICE_NO_DOCUMENTS = "No documents are loaded yet, so this answer comes from the model alone."
NOTICE_MODEL_ALONE = "This answer comes from the model alone."
NOTICE_NOTHING_FOUND = "I found nothing relevant to this in your documents, so this answer does not come from them."


@dataclass(frozen=True)
class Wording:
    """The notices that tell the user where to act: commands in the CLI, tabs in the app."""

    no_model: str
    no_documents_either: str
    model_problem_detail: bool
    """Whether the no-model notice streams the model layer's own reason (which names CLI commands)."""


CLI_WORDING = Wording(NOTICE_NO_MODEL, NOTICE_NO_DOCUMENTS_EITHER, model_problem_detail=True)
APP_WORDING = Wording(NOTICE_NO_MODEL_APP, NOTICE_NO_DOCUMENTS_EITHER_APP, model_problem_detail=False)


def failure_message(error: Exception) -> str:
    """What the user reads when a turn fails for a reason other than the model's malformed ReAct."""
    if isinstance(error, ModelSwitchedError):
        return str(error)
    if isinstance(error, ModelError):
        return f"The model could not answer: {error}"
    return (f"The answer failed ({type(error).__name__}: {error}). Your question is saved; try again, "
            "and see the log if it keeps happening.")


class EmptyQuestionError(ValueError):
    """The question is empty."""


class QuestionTooLongError(ValueError):
    """The question does not fit in the model's context."""


@dataclass
class ModelHandle:
    """What a turn needs from the model layer: a LlamaIndex LLM and its tokenizer's counts."""

    llm: LLM
    count_tokens: Callable[[str], int]
    context_window: int


def load_model_handle(settings: Settings, *, enable_thinking: bool = True) -> ModelHandle:
    """The shared engine (or the model server of ``llm_base_url``) as a ``ModelHandle``; raises
    ``ModelNotDownloadedError`` when no model is on disk.

    The LLM is this handle's own copy (same engine), so its options never change another caller's. Its
    thoughts are bounded by ``thinking_budget`` at the decode speed measured on this computer (estimated
    when the plan was not measured); without thinking the prompt ends in an empty think block (also for a
    model that always thinks).
    """
    options: dict[str, Any] = {"enable_thinking": enable_thinking}
    if settings.max_new_tokens:
        options["max_new_tokens"] = settings.max_new_tokens
    if settings.llm_base_url:  # a model server answers; the rest of the turn is the same
        from docmind.model.server_llm import connect_server

        server = connect_server(settings)
        return ModelHandle(llm=server.llm.model_copy(update=options), count_tokens=server.count_tokens,
                           context_window=server.context_window)
    from docmind.model.runtime import get_runtime

    runtime = get_runtime(settings)
    engine = runtime.engine
    options["thinking_budget"] = thinking_budget(settings, runtime.loaded.decode_tok_s).tokens
    return ModelHandle(
        llm=runtime.llm.model_copy(update=options),
        count_tokens=lambda text: len(engine.tokenize(text)) if text else 0,
        context_window=engine.context_window,
    )


class _DocMindReActAgent(ReActAgent):
    """A ReActAgent that parses ReAct steps from the text after the model's ``<think>`` block.

    The raw stream (thinking included) still reaches the caller's events.
    """

    async def _get_streaming_response(self, ctx: Any, current_llm_input: list[ChatMessage]) -> ChatResponse:
        response = await super()._get_streaming_response(ctx, current_llm_input)
        _strip_thinking(response)
        return response

    async def _get_response(self, current_llm_input: list[ChatMessage]) -> ChatResponse:
        response = await super()._get_response(current_llm_input)
        _strip_thinking(response)
        return response


def _is_malformed_react(error: WorkflowRuntimeError) -> bool:
    """ReActAgent retries output it cannot parse until ``max_iterations``, then fails with this error."""
    return str(error).startswith(REACT_GAVE_UP)


def _strip_thinking(response: ChatResponse) -> None:
    thinking, answer = split_thinking(response.message.content or "")
    if thinking:
        response.message.content = answer


@dataclass
class _Turn:
    """What one turn has produced so far."""

    session_id: str
    question: str
    recorder: TurnRecorder
    passages: TurnPassages
    started: float = field(default_factory=time.perf_counter)
    answer: str = ""
    thinking: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notices: list[str] = field(default_factory=list)
    mode: str = MODE_AGENT

    def event(self, kind: str, text: str) -> ChatEvent:
        if kind == "thinking":
            self.thinking += text
            return ThinkingToken(text)
        self.answer += text
        return AnswerToken(text)

    def count_usage(self, raw: Any) -> None:
        if isinstance(raw, dict) and "completion_tokens" in raw:
            self.prompt_tokens += int(raw.get("prompt_tokens") or 0)
            self.completion_tokens += int(raw.get("completion_tokens") or 0)


class ChatService:
    """Answers questions in sessions. One instance serves every session of a process (UI or CLI)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        model: ModelHandle | None = None,
        model_loader: Callable[[Settings], ModelHandle] = load_model_handle,
        searcher: Searcher | None = None,
        max_iterations: int = MAX_ITERATIONS,
        token_limit: int = SESSION_TOKEN_LIMIT,
        wording: Wording = CLI_WORDING,
    ) -> None:
        self.settings = settings or load_settings()
        self.db = open_database(self.settings.db_path)
        self.sessions = Sessions(self.db)
        self.chat_store = SQLiteChatStore(self.db)
        self._model = model
        self._model_loader = model_loader
        self._model_lock = asyncio.Lock()
        self._searcher = searcher
        self.max_iterations = max_iterations
        self.token_limit = token_limit
        self.wording = wording
        self._session_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        """Each session's in-process lock, kept only while a turn holds or awaits it."""

    # --- model and search ----------------------------------------------------------------------

    async def model(self) -> tuple[ModelHandle | None, str]:
        """The model, loaded on first use in a worker thread; or None and the reason it is unavailable."""
        async with self._model_lock:
            if self._model is None:
                try:
                    self._model = await asyncio.to_thread(self._model_loader, self.settings)
                except ModelError as error:
                    return None, str(error)
                except Exception as error:  # noqa: BLE001 - a model that fails to load must not stop search
                    log.exception("loading the model failed")
                    return None, f"The model could not be loaded ({error}). Run `docmind doctor` to check it."
            return self._model, ""

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            self._searcher = Searcher(self.settings, self.db)
        return self._searcher

    def history_budget(self, model: ModelHandle) -> int:
        return max(0, min(self.token_limit, model.context_window - RESERVED_TOKENS))

    # --- the turn ------------------------------------------------------------------------------

    async def chat(
        self, session_id: str | None, text: str, collections: Sequence[str] | None = None, *,
        owner: str | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Answer ``text`` in session ``session_id`` (a new session when None), streaming events.

        ``collections`` (names; empty: all documents) sets the session's scope first, recording the
        change; None keeps the scope it has. With ``owner`` (a logged-in user), the session must be
        theirs, and a new one is. Raises ``EmptyQuestionError``, ``QuestionTooLongError``,
        ``UnknownSessionError``, ``CollectionError`` or ``SessionBusyError`` before anything is stored.
        Every database call and tokenization runs in a worker thread, so a database locked by another
        process never stalls the event loop.
        """
        question = (text or "").strip()
        if not question:
            raise EmptyQuestionError("The question is empty: type a question first.")
        sessions = self.sessions.for_owner(owner)
        if session_id is not None:
            await asyncio.to_thread(sessions.get, session_id)
        scope = None if collections is None else await asyncio.to_thread(resolve_scope, self.db, collections)
        model, model_problem = await self.model()
        question_tokens = await asyncio.to_thread(self._check_length, question, model)
        if session_id is None:
            session_id = (await asyncio.to_thread(sessions.create)).id
        if scope is not None:
            await asyncio.to_thread(set_session_scope, self.db, session_id, scope)
        async with self._session_turn(session_id):
            turn = self._turn(session_id, question, question_tokens, model, model_problem)
            async with contextlib.aclosing(turn) as events:  # a closed stream records the turn at once
                async for event in events:
                    yield event

    async def regenerate(self, session_id: str, owner: str | None = None) -> AsyncIterator[ChatEvent]:
        """Drop the session's last question and its answer, then answer that question again.

        The drop and the new turn happen under one hold of the session lock, so no other turn of
        the session can slip in between. Raises ``NothingToRegenerateError`` when the session has
        no question yet, and ``UnknownSessionError`` or ``SessionBusyError`` like ``chat``.
        """
        await asyncio.to_thread(self.sessions.for_owner(owner).get, session_id)
        model, model_problem = await self.model()
        async with self._session_turn(session_id):
            question = await asyncio.to_thread(self.sessions.drop_last_turn, session_id)
            question_tokens = await asyncio.to_thread(self._check_length, question, model)
            turn = self._turn(session_id, question, question_tokens, model, model_problem)
            async with contextlib.aclosing(turn) as events:  # a closed stream records the turn at once
                async for event in events:
                    yield event

    @contextlib.asynccontextmanager
    async def _session_turn(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session for one turn: first in this process (queued), then across processes (or busy)."""
        memory_lock = self._session_locks.setdefault(session_id, asyncio.Lock())
        async with memory_lock:
            lock = await asyncio.to_thread(SessionLock, self.sessions.log, session_id)
            await lock.acquire()
            try:
                yield
            finally:
                lock.release()

    def _check_length(self, question: str, model: ModelHandle | None) -> int | None:
        if model is None:
            if len(question) > MAX_QUESTION_CHARS:
                raise QuestionTooLongError(
                    f"The question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}. Shorten it."
                )
            return None
        tokens = model.count_tokens(question)
        limit = self.history_budget(model)
        if tokens > limit:
            raise QuestionTooLongError(
                f"The question is {tokens} tokens but this model has room for {limit}. "
                "Shorten it, or split it into several questions."
            )
        return tokens

    async def _turn(
        self, session_id: str, question: str, question_tokens: int | None, model: ModelHandle | None, problem: str
    ) -> AsyncIterator[ChatEvent]:
        history = []
        if model is not None:
            budget = self.history_budget(model)
            memory = SessionMemory.for_session(self.chat_store, session_id, model.count_tokens, budget)
            history = await asyncio.to_thread(memory.get, None, (question_tokens or 0) + MESSAGE_OVERHEAD_TOKENS)
        recorder = TurnRecorder(self.sessions.log, session_id)
        await recorder.start(question, question_tokens)
        title = await asyncio.to_thread(self._title, session_id, question)
        turn = _Turn(session_id, question, recorder, TurnPassages())
        yield TurnStarted(session_id, title, question)

        searcher = await asyncio.to_thread(lambda: self.searcher)  # opening it reads the embedding model's files
        scope = await asyncio.to_thread(session_scope, self.db, session_id)
        search = DocumentSearch(searcher, turn.passages, question, scope=scope)
        if model is None:
            turn.mode = MODE_SEARCH
            steps = self._search_only(turn, search, problem)
        else:
            steps = self._agent_or_fallback(turn, search, model, history)
        try:
            async for event in steps:
                yield event
                await recorder.progress(turn.answer, turn.thinking)
            support = check_support(turn.answer.strip(), turn.passages)
            answer = turn.passages.strip_unknown(turn.answer.strip())
            answer = "\n\n".join([*(f"_{n}_" for n in turn.notices), answer]).strip()
            cited = turn.passages.cited(answer)
            consulted = list(dict.fromkeys(p.source for p in turn.passages.passages))
            tokens = await asyncio.to_thread(model.count_tokens, answer) if model is not None else None
            extra = {"citations": cited_json(cited, support), "consulted": consulted, "mode": turn.mode,
                     **support_json(support)}
            await recorder.finish(answer, turn.thinking.strip(), tokens, extra)
        except Exception as error:  # not the small model's malformed ReAct (that fell back): a real failure
            # a model problem (a server down, a prompt too long) is explained by its message; a bug gets a trace
            if isinstance(error, ModelError):
                log.warning("answering in session %s failed: %s", session_id, error)
            else:
                log.exception("answering in session %s failed", session_id)
            message = failure_message(error)
            await recorder.interrupt(turn.answer, turn.thinking, {"error": message, "mode": turn.mode})
            yield TurnFailed(session_id, message)
            return
        except BaseException:
            await recorder.interrupt(turn.answer, turn.thinking)
            raise
        if cited:
            yield Citations(cited)
        yield Done(
            session_id=session_id,
            answer=answer,
            thinking=turn.thinking.strip(),
            citations=cited,
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            seconds=time.perf_counter() - turn.started,
            mode=turn.mode,
            consulted=consulted,
            support=support,
        )

    def _title(self, session_id: str, question: str) -> str:
        self.sessions.title_from_first_question(session_id, question)
        return self.sessions.get(session_id).title

    # --- the three ways to answer ----------------------------------------------------------------

    async def _search_only(self, turn: _Turn, search: DocumentSearch, problem: str) -> AsyncIterator[ChatEvent]:
        """No model: the best passages, labelled as a search result."""
        detailed = problem and self.wording.model_problem_detail
        yield Notice("no-model", f"{problem} {NOTICE_SEARCH_ONLY}" if detailed else self.wording.no_model)
        if not await asyncio.to_thread(search.has_documents):
            text = self.wording.no_documents_either if search.scope.everything else search.nothing_to_search()
        else:
            passages = await search.asearch(turn.question)
            text = (
                search_result_answer(passages, "**Search result** (no model): the most relevant passages.")
                if passages
                else "**Search result** (no model): nothing in your documents matches this question."
            )
        turn.notices.append(self.wording.no_model)
        yield turn.event("answer", text)

    async def _agent_or_fallback(
        self, turn: _Turn, search: DocumentSearch, model: ModelHandle, history: list[ChatMessage]
    ) -> AsyncIterator[ChatEvent]:
        has_documents = await asyncio.to_thread(search.has_documents)
        if not has_documents:
            notice = (NOTICE_NO_DOCUMENTS if search.scope.everything
                      else f"{search.nothing_to_search()} {NOTICE_MODEL_ALONE}")
            turn.notices.append(notice)
            yield Notice("no-documents", notice)
        failure: Exception | None = None
        try:
            async for event in self._agent(turn, search, model, history):
                yield event
        except WorkflowRuntimeError as error:
            if not _is_malformed_react(error):
                raise
            failure = error
        except PromptTooLongError as error:
            if not turn.passages.passages:  # nothing found to answer from: the question itself does not fit
                raise
            failure = error  # the agent's notes (passages it read) outgrew the context
        if failure is None and turn.answer.strip():
            if turn.passages.searched and not turn.passages.passages and has_documents:
                turn.notices.append(NOTICE_NOTHING_FOUND)
            return
        log.info("agent gave no usable answer (%s); answering directly from the passages", failure or "empty answer")
        turn.mode = MODE_FALLBACK
        if turn.answer:
            yield AnswerReset()
            turn.answer = ""
        notice = FALLBACK_TOO_LONG if isinstance(failure, PromptTooLongError) else FALLBACK_FORMAT
        async for event in self._fallback(turn, search, model, history, has_documents, notice):
            yield event

    async def _agent(
        self, turn: _Turn, search: DocumentSearch, model: ModelHandle, history: list[ChatMessage]
    ) -> AsyncIterator[ChatEvent]:
        agent = _DocMindReActAgent(
            tools=make_tools(search), llm=model.llm, system_prompt=SYSTEM_PROMPT, streaming=True
        )
        working = SessionMemory.for_session(SimpleChatStore(), "turn", model.count_tokens, self.history_budget(model))
        handler = agent.run(
            user_msg=turn.question, chat_history=history or None, memory=working, max_iterations=self.max_iterations
        )
        splitter: StepSplitter | None = None
        try:
            async for ev in handler.stream_events():
                if isinstance(ev, AgentInput):
                    splitter = StepSplitter()
                    if turn.answer:
                        turn.answer = ""
                        yield AnswerReset()
                elif isinstance(ev, AgentStream):
                    splitter = splitter or StepSplitter()
                    if ev.thinking_delta:
                        yield turn.event("thinking", ev.thinking_delta)
                    for kind, text in splitter.feed(ev.delta):
                        yield turn.event(kind, text)
                    turn.count_usage(ev.raw)
                elif isinstance(ev, AgentOutput):
                    for kind, text in splitter.finish() if splitter else []:
                        yield turn.event(kind, text)
                    splitter = None
                elif isinstance(ev, ToolCallResult):
                    if ev.tool_output.exception is not None:  # LlamaIndex would feed a tool's bug back as text
                        raise ev.tool_output.exception
                elif isinstance(ev, ToolCall):
                    yield ToolCalled(ev.tool_name, dict(ev.tool_kwargs))
            result = await handler
        except BaseException:
            with contextlib.suppress(Exception):  # a failed run re-raises its error here; the first one counts
                await handler.cancel_run()
            raise
        final = result.response.content if isinstance(result, AgentOutput) else ""
        if final and final.strip():
            turn.answer = final.strip()

    async def _fallback(
        self,
        turn: _Turn,
        search: DocumentSearch,
        model: ModelHandle,
        history: list[ChatMessage],
        has_documents: bool,
        notice: str,
    ) -> AsyncIterator[ChatEvent]:
        """One direct answer from the passages (the first ``FALLBACK_PASSAGES`` found, so the prompt stays
        within the context); if even that fails, the passages themselves. ``notice`` says why."""
        passages: list[Passage] = turn.passages.passages[:FALLBACK_PASSAGES]
        if has_documents and not passages:
            passages = await search.asearch(turn.question)
        if has_documents and not passages:
            turn.notices.append(NOTICE_NOTHING_FOUND)
        if passages:
            prompt = f"Passages:\n\n{format_passages(passages)}\n\nQuestion: {turn.question}"
            messages = [ChatMessage(role="system", content=FALLBACK_PROMPT), *history,
                        ChatMessage(role="user", content=prompt)]
        else:
            messages = [ChatMessage(role="system", content=NO_PASSAGES_PROMPT), *history,
                        ChatMessage(role="user", content=turn.question)]
        yield Notice("fallback", notice)
        splitter = StepSplitter()
        stream = await model.llm.astream_chat(messages)
        async for chunk in stream:
            for kind, text in splitter.feed(chunk.delta or ""):
                yield turn.event(kind, text)
            turn.count_usage(chunk.raw)
        for kind, text in splitter.finish():
            yield turn.event(kind, text)
        if turn.answer.strip():
            return
        if turn.answer:
            yield AnswerReset()
            turn.answer = ""
        text = (
            search_result_answer(passages, "**Search result**: the model gave no answer; these passages match best.")
            if passages
            else "The model gave no answer to this question. Try rephrasing it."
        )
        yield turn.event("answer", text)
