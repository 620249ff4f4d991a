"""Assemble the DocMind page: title, status line and the tabs, each built by its own module."""

from __future__ import annotations

import gradio as gr

from docmind import __version__
from docmind.ui import chat, documents, sessions
from docmind.ui.context import AppContext
from docmind.ui.status import render_status

TITLE = "DocMind"


def build_app(context: AppContext) -> gr.Blocks:
    """The whole page as a Gradio Blocks, ready for ``queue()`` and ``launch()``."""
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(f"## {TITLE} <small>{__version__} · chat with your documents, offline</small>")
        render_status(context)
        chatter = chat.Chatter.create(context)
        with gr.Tabs(selected="chat") as tabs:
            chat_tab = chat.render(context, chatter)
            documents.render(context)
            sessions_tab = sessions.render(context)
        sessions_tab.open_button.click(
            chat_tab.open_session,
            sessions_tab.selected,
            [chat_tab.chatbot, chat_tab.session_id, chat_tab.picker, tabs],
            api_visibility="private",
        )
        chat.register_api(context, chatter)
        sessions.register_api(context)
    return demo
