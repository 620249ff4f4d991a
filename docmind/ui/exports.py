"""Chat exports as downloads, for the chat's owner only.

``GET /docmind/export/{session_id}?format=md|json`` makes the export when it is asked for and sends it as
an attachment. Nothing is written to disk, so no file URL of Gradio's (which any logged-in user may
fetch) ever holds a chat. The chat is looked up as the requesting user's (``Sessions.for_owner``): another
user's chat is a 404, exactly like a chat that does not exist. Without logins the route serves this
computer only, like the document viewer.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from docmind.agent.sessions import Sessions, UnknownSessionError
from docmind.ui.auth import current_user
from docmind.ui.viewer import SECURITY_HEADERS, is_local_client

if TYPE_CHECKING:
    from docmind.ui.context import AppContext

EXPORT_PATH = "/docmind/export"
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "json": "application/json"}


def export_url(session_id: str, kind: str) -> str:
    """The link that downloads chat ``session_id`` as ``kind`` ("md" or "json")."""
    return f"{EXPORT_PATH}/{quote(session_id, safe='')}?format={kind}"


def export_file_name(title: str, session_id: str, kind: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", title).strip("-")[:40] or "chat"
    return f"{slug}-{session_id}.{kind}"


def add_routes(app: FastAPI, context: AppContext) -> None:
    """Serve chat exports from ``app`` (Gradio's FastAPI app)."""
    every = Sessions(context.db)

    @app.get(EXPORT_PATH + "/{session_id}")
    def export(session_id: str, request: Request, format: str = "md") -> Response:
        user = current_user(request)
        if user is None and not is_local_client(request):
            raise HTTPException(status_code=403, detail="Chat exports are only served to this computer.")
        if format not in MEDIA_TYPES:
            raise HTTPException(status_code=400, detail="Ask for format=md or format=json.")
        sessions = every.for_owner(user)
        try:
            info = sessions.get(session_id)
            body = (sessions.export_markdown(session_id) if format == "md"
                    else json.dumps(sessions.export_json(session_id), ensure_ascii=False, indent=2))
        except UnknownSessionError as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        name = quote(export_file_name(info.title, session_id, format))
        return Response(body, media_type=MEDIA_TYPES[format],
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store",
                                 "Content-Disposition": f"attachment; filename*=UTF-8''{name}"})
