"""The Chat tab: streamed answers with a closed, live "Thinking" block and the sources one click away,
stop, regenerate, new chat, a picker of past chats (titled with their dates) and a think / answer-fast
switch. A loaded page reopens the last chat. Also the scripting endpoint ``/chat``.

Each browser tab keeps its own session id in a hidden textbox, so several tabs chat at once. Send and
Regenerate are enabled only when they have something to do.
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

from docmind.agent.events import MODE_SEARCH
from docmind.agent.sessions import Sessions, chat_labels
from docmind.config import Settings
from docmind.ui import scope
from docmind.ui.auth import current_user
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
                from docmind.agent.chat import APP_WORDING, ChatService

                self._services = (ChatService(self._settings, wording=APP_WORDING),
                                  ChatService(self._settings, model_loader=_fast_model_handle, wording=APP_WORDING))
            return self._services[0 if think else 1]

    def use_settings(self, settings: Settings) -> None:
        """Answer with the model of new settings from the next turn on."""
        with self._lock:
            self._settings = settings
            self._services = None

    async def turn(
        self, context: AppContext, question: str, session_id: str, think: bool, *, regenerate: bool = False,
        owner: str | None = None, collections: list[str] | None = None,
    ) -> AsyncIterator[TurnView]:
        """Stream one turn as a growing ``TurnView``; errors end up in ``view.error``, never raised.

        With ``regenerate``, the session's last question is dropped and asked again (``question`` is
        only shown until the turn starts). ``owner`` is the logged-in user (None without logins).
        ``collections`` sets the chat's scope first (None keeps it).
        """
        view = TurnView(question=question, session_id=session_id)
        if context.model.status.phase is ModelPhase.LOADING:
            view.notices.append(LOADING_NOTICE)
        last, shown_text = time.monotonic(), False  # nothing worth a page update before the first text
        try:
            service = await asyncio.to_thread(self.service, think)
            stream = (service.regenerate(session_id, owner) if regenerate
                      else service.chat(session_id or None, question, collections, owner=owner))
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


PICKER_PLACEHOLDER = "Choose a past chat to continue it…"
_LAST_QUESTION = "document.querySelectorAll('#docmind-chatbot .message-row.user-row')"
_SCROLL_TO = """(row) => {
    const box = document.querySelector('#docmind-chatbot [role=log]');
    if (row && box) box.scrollTop += row.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
}"""
SCROLL_TO_NEW_QUESTION_JS = f"""() => {{
    const scrollTo = {_SCROLL_TO};
    const before = {_LAST_QUESTION}.length;
    let tries = 0;
    const timer = setInterval(() => {{
        const rows = {_LAST_QUESTION};
        if (rows.length > before || ++tries > 50) {{ clearInterval(timer); scrollTo(rows[rows.length - 1]); }}
    }}, 100);
}}"""
"""Once the new question shows, scroll the chat so it is at the top: the answer grows below it, in view."""
SCROLL_TO_LAST_QUESTION_JS = f"""() => {{
    const rows = {_LAST_QUESTION};
    ({_SCROLL_TO})(rows[rows.length - 1]);
}}"""
"""After an answer: the question and the start of its answer (with any notice) in view, not its end."""
SET_PICKER_PLACEHOLDER_JS = f"""() => {{
    const input = document.querySelector('#docmind-session-picker input');
    if (input) input.placeholder = {PICKER_PLACEHOLDER!r};
}}"""


@dataclass
class ChatTab:
    """The components other tabs wire to (the Sessions tab opens a chat here)."""

    tab: gr.Tab
    chatbot: gr.Chatbot
    session_id: gr.Textbox
    picker: gr.Dropdown
    regenerate: gr.Button
    model_button: gr.Button
    sessions: Sessions

    @property
    def shown(self) -> list:
        """The outputs ``show`` fills: the chat, its id, the picker and the Regenerate button."""
        return [self.chatbot, self.session_id, self.picker, self.regenerate]

    def show(self, sid: str, request: gr.Request) -> tuple:
        """Outputs for ``shown``: chat ``sid`` (or a new, empty chat for "") of the request's user."""
        sessions = self.sessions.for_owner(current_user(request))
        history = history_from_stored(sessions.messages(sid)) if sid else []
        picker = gr.update(choices=_choices(sessions), value=sid or None)
        return history, sid, picker, gr.update(interactive=_has_question(history))

    def reopen(self, request: gr.Request) -> tuple:
        """On page load (a reload, a new browser tab): the most recent chat, so nothing looks lost."""
        latest = self.sessions.for_owner(current_user(request)).latest()
        return self.show(latest.id if latest else "", request)

    def open_session(self, sid: str, request: gr.Request) -> tuple:
        """Outputs for ``[*shown, tabs]``: session ``sid`` shown in the Chat tab."""
        return (*self.show(sid, request), gr.Tabs(selected="chat"))


def _choices(sessions: Sessions) -> list[tuple[str, str]]:
    chats = sessions.list()
    return list(zip(chat_labels(chats), [s.id for s in chats]))


def _has_question(history: list) -> bool:
    return any(m.get("role") == "user" for m in history or [])


def render(context: AppContext, chatter: Chatter) -> ChatTab:
    """Build the Chat tab inside the current Blocks."""
    sessions = Sessions(context.db)

    def choices(request: gr.Request) -> list[tuple[str, str]]:
        return _choices(sessions.for_owner(current_user(request)))

    with gr.Tab("Chat", id="chat") as tab:
        with gr.Row(equal_height=True):
            picker = gr.Dropdown(
                choices=[],  # filled per user when the page loads (ChatTab.reopen)
                value=None,
                label="Past chats",
                scale=5,
                allow_custom_value=False,
                elem_id="docmind-session-picker",
            )
            new_chat = gr.Button("New chat", scale=1)
            mode = gr.Radio([THINK, FAST], value=THINK, label="Answer style", scale=2)
        session_id = gr.Textbox(visible=False, elem_id="docmind-session-id")
        scope_bar = scope.render_scope_bar(context)
        chatbot = gr.Chatbot(
            height=520,
            elem_id="docmind-chatbot",
            show_label=False,
            placeholder="Ask a question about your documents. Answers cite their sources as [1], [2]…",
            buttons=["copy"],
            feedback_options=None,
            group_consecutive_messages=True,
            autoscroll=False,
        )
        model_button = gr.Button("Get written answers: open the Model tab", visible=False, size="sm",
                                 elem_id="docmind-open-model")
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
            send = gr.Button("Send", variant="primary", scale=1, interactive=False, elem_id="docmind-send")
            stop = gr.Button("Stop", variant="stop", scale=1, visible=False, elem_id="docmind-stop")
            regenerate = gr.Button("Regenerate", scale=1, interactive=False, elem_id="docmind-regenerate")
        pending = gr.State("")

    async def stream(text: str, sid: str, style: str, earlier: Callable[[TurnView], list], request: gr.Request,
                     regenerate: bool = False, collections: list[str] | None = None):
        """Stream one turn into the chat below the messages ``earlier(view)`` returns.

        A new chat joins the picker as soon as its question is stored. Stop cancels this; the turn
        then ends (and is stored as interrupted) before ``after_stop`` redraws.
        """
        page, owner = request.session_hash or "", current_user(request)
        page_turn = chatter.track(page, sid)
        busy = gr.update(visible=False), gr.update(visible=True), gr.update(interactive=False)
        try:
            view = TurnView(question=text, session_id=sid)
            yield earlier(view) + view.messages(), sid, gr.skip(), *busy, gr.update(visible=False)
            turn = chatter.turn(context, text, sid, think=style == THINK, regenerate=regenerate, owner=owner,
                                collections=collections)
            async with contextlib.aclosing(turn) as views:
                async for view in views:
                    listed = gr.skip()
                    if view.session_id and page_turn.session_id != view.session_id:  # a new chat: list it now
                        listed = gr.update(choices=await asyncio.to_thread(choices, request), value=view.session_id)
                    page_turn.session_id = view.session_id or sid
                    yield (earlier(view) + view.messages(), page_turn.session_id, listed, gr.skip(), gr.skip(),
                           gr.skip(), gr.skip())
        finally:
            chatter.end(page, page_turn)
        picked = gr.update(choices=await asyncio.to_thread(choices, request), value=view.session_id or None)
        history = earlier(view) + view.messages()
        yield (history, view.session_id or sid, picked, gr.update(visible=True), gr.update(visible=False),
               gr.update(interactive=bool(view.session_id) and _has_question(history)),
               gr.update(visible=view.mode == MODE_SEARCH))

    async def respond(text: str, sid: str, style: str, history: list, names: list[str] | None, request: gr.Request):
        """Stream the answer to ``text`` into the chat, searching the chosen collections; the question box was
        already cleared."""
        text = (text or "").strip()
        if not text:
            yield history, sid, *(gr.skip() for _ in range(5))
            return
        history = list(history or [])
        async for update in stream(text, sid, style, lambda view: history, request, collections=names or []):
            yield update

    def take_question(text: str) -> tuple:
        return "", text, gr.update(interactive=False)

    outputs = [chatbot, session_id, picker, send, stop, regenerate, model_button]
    events = []
    for trigger in (question.submit, send.click):
        trigger(None, js=SCROLL_TO_NEW_QUESTION_JS, queue=False, api_visibility="private")
        event = trigger(take_question, question, [question, pending, send], queue=False,
                        api_visibility="private").then(
            respond, [pending, session_id, mode, chatbot, scope_bar.chooser], outputs, api_visibility="private"
        )
        event.then(None, js=SCROLL_TO_LAST_QUESTION_JS, api_visibility="private")
        events.append(event)
    question.change(lambda text: gr.update(interactive=bool(text.strip())), question, send, queue=False,
                   show_progress="hidden", trigger_mode="always_last", api_visibility="private")

    async def answer_again(sid: str, style: str, history: list, request: gr.Request):
        """Regenerate: the core drops the session's last turn and answers its question again."""
        history = list(history or [])
        if not sid or not _has_question(history):
            gr.Warning("There is no question to answer again yet: ask one first.", duration=5)
            yield history, sid, gr.skip(), gr.skip(), gr.skip(), gr.update(interactive=False), gr.skip()
            return
        last_question = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=len(history))

        def earlier(view: TurnView) -> list:  # the last turn leaves the chat once the core has dropped it
            return history[:last_question] if view.question else history

        async for update in stream("", sid, style, earlier, request, regenerate=True):
            yield update

    regen = regenerate.click(answer_again, [session_id, mode, chatbot], outputs, api_visibility="private")
    regen.then(None, js=SCROLL_TO_LAST_QUESTION_JS, api_visibility="private")
    events.append(regen)

    async def after_stop(sid: str, request: gr.Request) -> tuple:
        """Once the stopped turn is stored, show its session as stored: the partial answer, marked as interrupted."""
        sid = await chatter.settled(request.session_hash or "") or sid
        history, sid, picked, regenerate_state = await asyncio.to_thread(chat_tab.show, sid, request)
        return history, sid, picked, gr.update(visible=True), gr.update(visible=False), regenerate_state

    stop.click(lambda: (gr.update(visible=True), gr.update(visible=False)), outputs=[send, stop],
               cancels=events, queue=False, api_visibility="private").then(
        after_stop, session_id, [chatbot, session_id, picker, send, stop, regenerate], api_visibility="private")
    scope.wire_scope_bar(context, scope_bar, session_id)
    chat_tab = ChatTab(tab=tab, chatbot=chatbot, session_id=session_id, picker=picker, regenerate=regenerate,
                       model_button=model_button, sessions=sessions)

    def pick(sid: str, request: gr.Request) -> tuple:
        return chat_tab.show(sid or "", request)

    def start_new(request: gr.Request) -> tuple:
        return chat_tab.show("", request)

    def relist(sid: str, request: gr.Request) -> dict:
        # no chat id yet (a new tab still loading its last chat): keep the value the page load sets
        return gr.update(choices=choices(request), value=sid) if sid else gr.update(choices=choices(request))

    picker.input(pick, picker, chat_tab.shown, api_visibility="private")
    new_chat.click(start_new, outputs=chat_tab.shown, api_visibility="private")
    tab.select(relist, session_id, picker,
               api_visibility="private")
    return chat_tab


def register_api(context: AppContext, chatter: Chatter) -> None:
    """``/chat``: (message, session id) → the answer, streamed as it grows."""

    async def chat(
        message: str, session_id: str = "", think: bool = True, collections: list[str] | None = None,
        request: gr.Request = None,
    ) -> AsyncIterator[dict]:
        """Ask a question; leave session_id empty for a new chat. ``collections`` (names; [] for all documents)
        sets what the chat searches; leave it out to keep the chat's choice. Streams {session, answer, thinking,
        citations, notices, mode, prompt_tokens, completion_tokens, done, error}; the last has done=True (or an error)."""
        async for view in chatter.turn(context, message, session_id, think, owner=current_user(request),
                                       collections=collections):
            yield view.result()

    gr.api(chat, api_name="chat")
