"""Assemble the DocMind page: title, status line and the tabs, each built by its own module."""

from __future__ import annotations

import gradio as gr

from docmind import __version__
from docmind.ui import chat, documents, first_run, sessions
from docmind.ui.context import AppContext, ModelPhase
from docmind.ui.status import render_status

TITLE = "DocMind"


def build_app(context: AppContext) -> gr.Blocks:
    """The whole page as a Gradio Blocks, ready for ``queue()`` and ``launch()``."""
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(f"## {TITLE} <small>{__version__} · chat with your documents, offline</small>")
        status = render_status(context)
        chatter = chat.Chatter.create(context)
        with gr.Tabs(selected="chat") as tabs:
            chat_tab = chat.render(context, chatter)
            documents.render(context, status)
            sessions_tab = sessions.render(context)
            first_run.render(context, tabs, status)
        sessions_tab.open_button.click(
            chat_tab.open_session, sessions_tab.selected, [*chat_tab.shown, tabs], api_visibility="private"
        )
        chat_tab.model_button.click(lambda: gr.Tabs(selected="model"), outputs=tabs, api_visibility="private")
        demo.load(lambda: _first_tab(context), outputs=tabs, api_visibility="private")
        demo.load(status.refresh, status.shown, status.outputs, api_visibility="private", show_progress="hidden")
        demo.load(chat_tab.reopen, outputs=chat_tab.shown, js=chat.SET_PICKER_PLACEHOLDER_JS, api_visibility="private")
        chat.register_api(context, chatter)
        sessions.register_api(context)
    return demo


def _first_tab(context: AppContext) -> gr.Tabs:
    """Start the background work; open on the Model tab while no model is on disk (else on Chat)."""
    context.started()
    missing = context.model.status.phase is ModelPhase.MISSING
    return gr.Tabs(selected="model") if missing else gr.skip()
