"""The Chat tab's scope bar: which documents a chat searches (all of them, or some collections), shown
above the chat and changeable at any time; each change is recorded in the chat."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from docmind.agent.sessions import Sessions, local_time
from docmind.cache.collections import (
    ALL_DOCUMENTS,
    list_collections,
    resolve_scope,
    scope_changes,
    session_scope,
    set_session_scope,
)
from docmind.storage.sessions import ChatLog
from docmind.ui.auth import current_user
from docmind.ui.context import AppContext
from docmind.ui.feedback import shows_errors


@dataclass
class ScopeBar:
    header: gr.Markdown
    chooser: gr.Dropdown


def header_markdown(context: AppContext, session_id: str, names: list[str] | None) -> str:
    """"This chat searches: ..." and, when the choice changed after the chat began, since when."""
    label = ", ".join(names or []) or ALL_DOCUMENTS
    text = f"This chat searches: **{label}**"
    if session_id:
        changes = scope_changes(context.db, session_id)
        messages = ChatLog(context.db).messages(session_id)
        if changes and messages and changes[-1].changed_at > messages[0].created_at:
            when = local_time(changes[-1].changed_at)
            text += f" (changed at {when:%H:%M})" if when else " (changed during this chat)"
    return text


def render_scope_bar(context: AppContext) -> ScopeBar:
    """The header and the chooser, side by side (call inside the Chat tab)."""
    with gr.Row(equal_height=True):
        header = gr.Markdown(header_markdown(context, "", None), elem_id="docmind-chat-scope")
        chooser = gr.Dropdown(
            label="Search in",
            info="Leave empty to search all your documents. Make collections in the Documents tab.",
            choices=[c.name for c in list_collections(context.db)],
            value=[],
            multiselect=True,
            elem_id="docmind-scope-chooser",
        )
    return ScopeBar(header, chooser)


def wire_scope_bar(context: AppContext, bar: ScopeBar, session_id: gr.Textbox) -> None:
    """Record a change at once in an open chat; show an opened chat's own choice."""

    every = Sessions(context.db)

    def owned(sid: str, request: gr.Request) -> None:
        """Refuse (``UnknownSessionError``) a chat id that is not the request's user's."""
        if sid:
            every.for_owner(current_user(request)).get(sid)

    @shows_errors
    def changed(names: list[str] | None, sid: str, request: gr.Request) -> str:
        owned(sid, request)
        scope = resolve_scope(context.db, names or [])
        if sid:
            set_session_scope(context.db, sid, scope)
        return header_markdown(context, sid, list(scope.names))

    @shows_errors
    def opened(sid: str, request: gr.Request) -> tuple:
        """Another chat is shown: what it searches; a new chat starts with all documents."""
        owned(sid, request)
        names = list(session_scope(context.db, sid).names)
        choices = [c.name for c in list_collections(context.db)]
        return gr.update(choices=choices, value=names), header_markdown(context, sid, names)

    bar.chooser.change(changed, [bar.chooser, session_id], bar.header, api_visibility="private")  # also on Clear
    session_id.change(opened, session_id, [bar.chooser, bar.header], api_visibility="private", show_progress="hidden")
    bar.chooser.focus(lambda: gr.update(choices=[c.name for c in list_collections(context.db)]),
                      outputs=bar.chooser, api_visibility="private", show_progress="hidden")
