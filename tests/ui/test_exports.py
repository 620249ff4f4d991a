"""Chat exports from the export route of a real app on loopback, without logins (the desktop app): made on
request, as an attachment, for this computer only. With logins, only for the chat's owner: test_lan_login."""

from __future__ import annotations

import json

import httpx
import pytest

from docmind.agent.sessions import EXPORT_FORMAT, EXPORT_VERSION, Sessions
from docmind.config import load_settings

CHAT = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "title": "Warranty questions", "messages": [
    {"role": "user", "content": "What does the warranty cover?", "created_at": "2026-12-04T10:00:00+00:00"},
    {"role": "assistant", "content": "Repairs for three years [1].", "thinking": "Look it up.",
     "created_at": "2026-12-04T10:00:05+00:00", "citations": []},
]}


@pytest.fixture
def app(data_dir):
    from docmind.ui import serve

    running = serve(load_settings(data_dir=data_dir), open_browser=False)
    yield running
    running.close()


def test_an_export_is_made_on_request_for_this_computer(app, data_dir):
    sessions = Sessions(data_dir / "docmind.db")
    chat = sessions.import_json(CHAT)
    base = app.url.rstrip("/")

    markdown = httpx.get(f"{base}/docmind/export/{chat.id}?format=md")
    assert markdown.status_code == 200
    assert markdown.headers["content-disposition"] == f"attachment; filename*=UTF-8''Warranty-questions-{chat.id}.md"
    assert markdown.headers["x-content-type-options"] == "nosniff"
    assert markdown.text == sessions.export_markdown(chat.id)
    as_json = httpx.get(f"{base}/docmind/export/{chat.id}?format=json")
    assert as_json.status_code == 200 and json.loads(as_json.text) == sessions.export_json(chat.id)

    assert httpx.get(f"{base}/docmind/export/not-a-chat?format=md").status_code == 404
    assert httpx.get(f"{base}/docmind/export/{chat.id}?format=html").status_code == 400
    rebound = httpx.get(f"{base}/docmind/export/{chat.id}?format=md", headers={"Host": f"evil.example:{app.port}"})
    assert rebound.status_code == 403, "a page whose host name resolves to 127.0.0.1 gets no chat"
