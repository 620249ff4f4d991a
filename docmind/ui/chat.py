"""The Chat tab: streamed answers with collapsible thinking and numbered sources, stop, regenerate,
new chat, a session picker and a think / answer-fast switch. Also the scripting endpoint ``/chat``.

Each browser tab keeps its own session id in a hidden textbox, so several tabs chat at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gradio as gr

from docmind.agent.sessions import Sessions
from docmind.config import Settings
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.feedback import user_message
from docmind.ui.imports import import_heavy_libraries
from docmind.ui.transcript import TurnView, history_from_stored

if TYPE_CHECKING:
    from docmind.agent.chat import ChatService, ModelHandle

log = logging.getLogger(__name__)

THINK = "Think first"
FAST = "Answer fast"
STREAM_INTERVAL = 0.05
"""Seconds between two page updates while tokens stream (the first token is always sent at once)."""
STOP_WAIT_SECONDS = 10.0
"""How long Stop waits for the cancelled turn to record its partial answer before redrawing the chat."""
LOADING_NOTICE = "The model is still loading; the answer starts as soon as it is ready."


def _fast_model_handle(settings: Settings) -> ModelHandle:
    """The shared engine with thinking switched off (models that always think ignore the switch)."""
    from docmind.agent.chat import load_model_handle

    return load_model_handle(settings, enable_thinking=False)


@dataclass
class PageTurn:
    """The latest turn a page started; ``ended`` is set once it is over and stored (finished or stopped)."""

    session_id: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Chatter:
    """The two ways to answer (thinking or fast) over one shared model engine.

    The agent (and with it LlamaIndex) is imported on first use, after the page is served.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._services: tuple[ChatService, ChatService] | None = None
        self._page_turns: dict[str, PageTurn] = {}

    def track(self, page: str, session_id: str) -> PageTurn:
        """Remember that ``page`` (a browser tab's session hash) starts a turn in ``session_id``."""
        turn = self._page_turns[page] = PageTurn(session_id)
        return turn

    def end(self, page: str, turn: PageTurn, keep_seconds: float = 2 * STOP_WAIT_SECONDS) -> None:
        """Mark ``page``'s ``turn`` over; forget it ``keep_seconds`` later (a Stop reads its session id before)."""
        turn.ended.set()
        asyncio.get_running_loop().call_later(keep_seconds, self._forget, page, turn)

    def _forget(self, page: str, turn: PageTurn) -> None:
        if self._page_turns.get(page) is turn:
            del self._page_turns[page]

    async def settled(self, page: str, timeout: float = STOP_WAIT_SECONDS) -> str:
        """Wait until ``page``'s latest turn is over and stored; return its session id ("" if it had none)."""
        turn = self._page_turns.get(page)
        if turn is None:
            return ""
        try:
            await asyncio.wait_for(turn.ended.wait(), timeout)
        except TimeoutError:
            log.warning("a stopped turn of session %s did not end within %.0f s", turn.session_id, timeout)
        return turn.session_id

    @classmethod
    def create(cls, context: AppContext) -> Chatter:
        chatter = cls(context.settings)
        context.on_settings_change(chatter.use_settings)
        context.after_start(chatter.service)
        return chatter

    def service(self, think: bool = True) -> ChatService:
        with self._lock:
            if self._services is None:
                import_heavy_libraries()
                from docmind.agent.chat import ChatService

                self._services = (ChatService(self._settings),
                                  ChatService(self._settings, model_loader=_fast_model_handle))
            return self._services[0 if think else 1]

    def use_settings(self, settings: Settings) -> None:
        """Answer with the model of new settings from the next turn on."""
        with self._lock:
            self._settings = settings
            self._services = None

    async def turn(
        self, context: AppContext, question: str, session_id: str, think: bool, *, regenerate: bool = False
    ) -> AsyncIterator[TurnView]:
        """Stream one turn as a growing ``TurnView``; errors end up in ``view.error``, never raised.

        With ``regenerate``, the session's last question is dropped and asked again (``question`` is
        only shown until the turn starts).
        """
        view = TurnView(question=question, session_id=session_id)
        if context.model.status.phase is ModelPhase.LOADING:
            view.notices.append(LOADING_NOTICE)
        last, shown_text = time.monotonic(), False  # nothing worth a page update before the first text
        try:
            service = await asyncio.to_thread(self.service, think)
            stream = service.regenerate(session_id) if regenerate else service.chat(session_id or None, question)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    view.apply(event)
                    now = time.monotonic()
                    first_text = not shown_text and bool(view.answer or view.thinking)
                    if first_text or view.done or view.error or now - last >= STREAM_INTERVAL:
                        last, shown_text = now, shown_text or first_text
                        yield view
        except Exception as error:  # shown in the chat, never as a stack trace
            view.error = user_message(error)
            yield view


@dataclass
class ChatTab:
    """The components other tabs wire to (the Sessions tab opens a chat here)."""

    tab: gr.Tab
    chatbot: gr.Chatbot
    session_id: gr.Textbox
    picker: gr.Dropdown
    sessions: Sessions

    def fresh_picker(self) -> dict:
        """The session picker with the chats that exist now (for a page that has just loaded)."""
        return gr.update(choices=_choices(self.sessions))

    def open_session(self, sid: str) -> tuple:
        """Outputs for ``[chatbot, session_id, picker, tabs]``: session ``sid`` shown in the Chat tab."""
        picker = gr.update(choices=_choices(self.sessions), value=sid)
        return history_from_stored(self.sessions.messages(sid)), sid, picker, gr.Tabs(selected="chat")


def _choices(sessions: Sessions) -> list[tuple[str, str]]:
    return [(s.title or "Untitled chat", s.id) for s in sessions.list()]


def render(context: AppContext, chatter: Chatter) -> ChatTab:
    """Build the Chat tab inside the current Blocks."""
    sessions = Sessions(context.db)

    def choices() -> list[tuple[str, str]]:
        return _choices(sessions)

    with gr.Tab("Chat", id="chat") as tab:
        with gr.Row(equal_height=True):
            picker = gr.Dropdown(
                choices=choices(),
                value=None,
                label="Chat",
                scale=5,
                allow_custom_value=False,
                elem_id="docmind-session-picker",
            )
            new_chat = gr.Button("New chat", scale=1)
            mode = gr.Radio([THINK, FAST], value=THINK, label="Answer style", scale=2)
        session_id = gr.Textbox(visible=False, elem_id="docmind-session-id")
        chatbot = gr.Chatbot(
            height=520,
            elem_id="docmind-chatbot",
            show_label=False,
            placeholder="Ask a question about your documents. Answers cite their sources as [1], [2]…",
            buttons=["copy"],
            feedback_options=None,
            group_consecutive_messages=True,
        )
        with gr.Row():
            question = gr.Textbox(
                placeholder="Ask about your documents…",
                show_label=False,
                scale=8,
                lines=1,
                max_lines=6,
                elem_id="docmind-question",
                autofocus=True,
            )
            send = gr.Button("Send", variant="primary", scale=1, elem_id="docmind-send")
            stop = gr.Button("Stop", variant="stop", scale=1, visible=False, elem_id="docmind-stop")
            regenerate = gr.Button("Regenerate", scale=1, elem_id="docmind-regenerate")
        pending = gr.State("")

    async def stream(text: str, sid: str, style: str, earlier: Callable[[TurnView], list], page: str,
                     regenerate: bool = False):
        """Stream one turn into the chat below the messages ``earlier(view)`` returns.

        Stop cancels this; the turn then ends (and is stored as interrupted) before ``after_stop`` redraws.
        """
        page_turn = chatter.track(page, sid)
        try:
            view = TurnView(question=text, session_id=sid)
            yield earlier(view) + view.messages(), sid, gr.skip(), gr.update(visible=False), gr.update(visible=True)
            turn = chatter.turn(context, text, sid, think=style == THINK, regenerate=regenerate)
            async with contextlib.aclosing(turn) as views:
                async for view in views:
                    page_turn.session_id = view.session_id or sid
                    yield earlier(view) + view.messages(), page_turn.session_id, gr.skip(), gr.skip(), gr.skip()
        finally:
            chatter.end(page, page_turn)
        picked = gr.update(choices=await asyncio.to_thread(choices), value=view.session_id or None)
        yield (earlier(view) + view.messages(), view.session_id or sid, picked, gr.update(visible=True),
               gr.update(visible=False))

    async def respond(text: str, sid: str, style: str, history: list, request: gr.Request):
        """Stream the answer to ``text`` into the chat; the question box was already cleared."""
        text = (text or "").strip()
        if not text:
            yield history, sid, gr.skip(), gr.update(visible=True), gr.update(visible=False)
            return
        history = list(history or [])
        async for update in stream(text, sid, style, lambda view: history, request.session_hash or ""):
            yield update

    def take_question(text: str) -> tuple[str, str]:
        return "", text

    outputs = [chatbot, session_id, picker, send, stop]
    events = []
    for trigger in (question.submit, send.click):
        event = trigger(take_question, question, [question, pending], queue=False, api_visibility="private").then(
            respond, [pending, session_id, mode, chatbot], outputs, api_visibility="private"
        )
        events.append(event)

    def show_session(sid: str | None) -> tuple:
        if not sid:
            return [], ""
        return history_from_stored(sessions.messages(sid)), sid

    async def answer_again(sid: str, style: str, history: list, request: gr.Request):
        """Regenerate: the core drops the session's last turn and answers its question again."""
        if not sid:
            raise gr.Error("There is no question to answer again yet: ask one first.")
        history = list(history or [])
        last_question = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=len(history))

        def earlier(view: TurnView) -> list:  # the last turn leaves the chat once the core has dropped it
            return history[:last_question] if view.question else history

        async for update in stream("", sid, style, earlier, request.session_hash or "", regenerate=True):
            yield update

    regen = regenerate.click(answer_again, [session_id, mode, chatbot], outputs, api_visibility="private")
    events.append(regen)

    async def after_stop(sid: str, request: gr.Request) -> tuple:
        """Once the stopped turn is stored, show its session as stored: the partial answer, marked as interrupted."""
        sid = await chatter.settled(request.session_hash or "") or sid

        def stored() -> tuple[list, list]:
            return (history_from_stored(sessions.messages(sid)) if sid else []), choices()

        history, listed = await asyncio.to_thread(stored)
        return (history, sid, gr.update(choices=listed, value=sid or None), gr.update(visible=True),
                gr.update(visible=False))

    stop.click(lambda: (gr.update(visible=True), gr.update(visible=False)), outputs=[send, stop],
               cancels=events, queue=False, api_visibility="private").then(
        after_stop, session_id, [chatbot, session_id, picker, send, stop], api_visibility="private")
    picker.input(show_session, picker, [chatbot, session_id], api_visibility="private")
    new_chat.click(lambda: ([], "", gr.update(value=None, choices=choices())), outputs=[chatbot, session_id, picker],
                   api_visibility="private")
    tab.select(lambda sid: gr.update(choices=choices(), value=sid or None), session_id, picker,
               api_visibility="private")
    return ChatTab(tab=tab, chatbot=chatbot, session_id=session_id, picker=picker, sessions=sessions)


def register_api(context: AppContext, chatter: Chatter) -> None:
    """``/chat``: (message, session id) → the answer, streamed as it grows."""

    async def chat(message: str, session_id: str = "", think: bool = True) -> AsyncIterator[dict]:
        """Ask a question; leave session_id empty for a new chat. Streams {session, answer, thinking, citations,
        notices, mode, prompt_tokens, completion_tokens, done, error}; the last has done=True (or an error)."""
        async for view in chatter.turn(context, message, session_id, think):
            yield view.result()

    gr.api(chat, api_name="chat")
