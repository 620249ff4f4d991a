"""The document viewer: a cited passage shown in its document, highlighted, served by the app itself.

Routes (added to Gradio's FastAPI app by :func:`add_routes`), every one for this machine only (or a
client signed in to the app when it serves another address):

- ``GET /docmind/view/{id}?page=N&passage=KEY``: the viewer page. A PDF is drawn by PDF.js (vendored in
  ``static/pdfjs``) at page N; any other document is shown as its extracted text (never as its own HTML),
  scrolled to the passage.
- ``GET /docmind/file/{id}``: the PDF or picture itself, as its own type (PDF, PNG, JPEG, WebP; no other
  type is ever served raw). A picture is shown above the text read from it.
- ``POST /docmind/locate/{id}``: where passage KEY is among the text items PDF.js found on a page.
- ``POST /docmind/open/{id}``: open the user's file with the system's default application.
- ``GET /docmind/static/{name}``: the viewer's script, style and PDF.js (pdfjs-dist 6.5.438 from npm, its
  modern build's ``pdf.min.mjs`` and ``pdf.worker.min.mjs`` as published, Apache-2.0: ``static/pdfjs/LICENSE``).

Documents are addressed by their id only (see ``docmind.cache.sources``); anything else is a 404.
"""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from docmind.cache.library import owns
from docmind.cache.locate import NOT_FOUND, Located, locate
from docmind.cache.sources import LibraryDocument, document_id, find_document, passage_key, passage_text
from docmind.ui.auth import current_user

if TYPE_CHECKING:
    from docmind.ui.context import AppContext

log = logging.getLogger(__name__)

PREFIX = "/docmind"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "viewer.js": "text/javascript",
    "viewer.css": "text/css",
    "panel.js": "text/javascript",
    "pdfjs/pdf.min.mjs": "text/javascript",
    "pdfjs/pdf.worker.min.mjs": "text/javascript",
}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
               "font-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; frame-ancestors 'self'; "
               "base-uri 'none'; form-action 'none'")
"""The viewer page runs only the app's own scripts: no inline script, nothing from another host."""
OPEN_HEADER = "X-DocMind-Action"
"""``POST /open`` needs this header, which a page on another site cannot send without the app's consent (CORS)."""
NOT_LOCATED = "The exact text of this passage could not be located on this page."


def viewer_url(source: str, page: int | None = None, text: str | None = None) -> str:
    """The link that opens document ``source`` in the viewer, at ``page``, with passage ``text`` highlighted."""
    query: dict[str, Any] = {}
    if page:
        query["page"] = page
    if text:
        query["passage"] = passage_key(text)
    return f"{PREFIX}/view/{document_id(source)}" + (f"?{urlencode(query)}" if query else "")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def is_local_client(request: Request) -> bool:
    """True when the request comes from this machine and names the app by a loopback address.

    The second check stops DNS rebinding: a web page whose own host name resolves to 127.0.0.1 is refused.
    """
    return bool(request.client) and _is_loopback(request.client.host) and _is_loopback(request.url.hostname or "")


class LocateQuery(BaseModel):
    """Where is passage ``passage`` (a key) of ``page`` among these text ``items`` of the page?"""

    page: int | None = None
    passage: str = ""
    items: list[str]


def add_routes(app: FastAPI, context: AppContext) -> None:
    """Serve the viewer from ``app`` (Gradio's FastAPI app), for the library of ``context``."""

    def allowed(request: Request) -> None:
        if not (is_local_client(request) or current_user(request) is not None):
            raise HTTPException(status_code=403, detail="The document viewer is only served to this computer.")

    def document(doc_id: str) -> LibraryDocument:
        found = find_document(context.db, doc_id)
        if found is None or not found.source.is_file():
            raise HTTPException(status_code=404, detail="No such document in the library.")
        return found

    router = APIRouter(prefix=PREFIX)
    guarded = APIRouter(prefix=PREFIX, dependencies=[Depends(allowed)])

    @router.get("/static/{name:path}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(status_code=404)
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name],
                            headers={**SECURITY_HEADERS, "Cache-Control": "max-age=3600"})

    @guarded.get("/view/{doc_id}")
    def view(doc_id: str, page: int | None = None, passage: str = "") -> Response:
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"}
        found = find_document(context.db, doc_id)
        if found is None or not found.source.is_file():
            return HTMLResponse(_missing_page(found), status_code=404, headers=headers)
        text = passage_text(context.db, found, page, passage) if passage else None
        return HTMLResponse(_page(found, document_body(found, page, text, bool(passage)), context.library_dir),
                            headers=headers)

    @guarded.get("/file/{doc_id}")
    def file(doc_id: str) -> Response:
        found = document(doc_id)
        if found.media_type is None:
            raise HTTPException(status_code=404, detail="Only PDF documents and pictures are served as files.")
        disposition = f"inline; filename*=UTF-8''{quote(found.name)}"
        return FileResponse(found.source, media_type=found.media_type,
                            headers={**SECURITY_HEADERS, "Content-Disposition": disposition,
                                     "Cache-Control": "no-store"})

    @guarded.post("/locate/{doc_id}")
    def find(doc_id: str, query: LocateQuery) -> Response:
        found = document(doc_id)
        text = passage_text(context.db, found, query.page, query.passage)
        located = locate(query.items, text) if text else NOT_FOUND
        return JSONResponse({"found": located.found, "exact": located.exact, "ranges": located.ranges,
                             "note": "" if located.found else NOT_LOCATED}, headers=SECURITY_HEADERS)

    @guarded.post("/open/{doc_id}")
    def open_original(doc_id: str, request: Request) -> Response:
        found = document(doc_id)
        if request.headers.get(OPEN_HEADER) != "open":
            raise HTTPException(status_code=403, detail=f"Send the {OPEN_HEADER} header.")
        if not is_local_client(request):
            raise HTTPException(status_code=403, detail="The file can only be opened on the computer running DocMind.")
        try:
            open_with_default_app(found.source)
        except OSError as error:
            log.warning("could not open %s: %s", found.source, error)
            return JSONResponse({"opened": False, "message": f"No application could open {found.name}: {error}"},
                                status_code=500, headers=SECURITY_HEADERS)
        return JSONResponse({"opened": True, "message": f"Opening {found.name}…"}, headers=SECURITY_HEADERS)

    app.include_router(router)
    app.include_router(guarded)


def open_with_default_app(path: Path) -> None:
    """Open ``path`` with the operating system's default application for its type; raise ``OSError``."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]  # Windows only
        return
    command = ["open" if sys.platform == "darwin" else "xdg-open", str(path)]
    subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


# --- the page ------------------------------------------------------------------------------------------------

def document_body(found: LibraryDocument, page: int | None, text: str | None, asked: bool) -> str:
    """The viewer's content: a PDF's canvas (filled by viewer.js), or the document's text with the passage marked."""
    if found.is_pdf:
        return (f'<div id="docmind-pdf" data-file="{PREFIX}/file/{found.id}" data-locate="{PREFIX}/locate/{found.id}" '
                f'data-page="{page or 1}" data-passage="{html.escape(passage_key(text)) if text else ""}" '
                f'data-asked="{"yes" if asked else ""}"></div>')
    from docmind.cache.readers import UnreadableFileError, read_file

    try:
        sections = read_file(found.source.read_bytes(), found.source)
    except (OSError, UnreadableFileError) as error:
        return f'<p class="docmind-note" role="status">This document cannot be shown: {html.escape(str(error))}</p>'
    parts = [f'<img class="docmind-picture" src="{PREFIX}/file/{found.id}" alt="The picture {html.escape(found.name)}">'
             ] if found.media_type else []
    note = NOT_LOCATED if asked else ""
    part = "Slide" if found.source.suffix.lower() == ".pptx" else "Page"
    for index, section in enumerate(sections):
        cited = text is not None and (section.page == page or len(sections) == 1)
        located = locate([section.text], text) if cited and text else None
        if located and located.found:
            note = "" if located.exact else "The passage's exact text differs here; the closest match is highlighted."
        heading = f"<h2>{part} {section.page}</h2>" if section.page and len(sections) > 1 else ""
        parts.append(f'<section class="docmind-section" id="section-{index + 1}">{heading}'
                     f'<div class="docmind-text">{_marked(section.text, located)}</div></section>')
    notice = f'<p class="docmind-note" role="status">{note}</p>' if note else ""
    return notice + "".join(parts)


def _marked(text: str, located: Located | None) -> str:
    """``text`` escaped, with the located span wrapped in ``<mark>``."""
    if not located or not located.found:
        return html.escape(text)
    start, end = located.ranges[0][1], located.ranges[-1][2]
    return (f"{html.escape(text[:start])}<mark class=\"docmind-highlight\" id=\"docmind-highlight\">"
            f"{html.escape(text[start:end])}</mark>{html.escape(text[end:])}")


def _missing_page(found: LibraryDocument | None) -> str:
    """The 404 page: what happened to the document, in plain words."""
    if found is None:
        reason = "This document is not in your library any more: it was removed."
    else:
        reason = (f"The file is no longer at {html.escape(str(found.source))}: it was moved or deleted. "
                  "Add it again from where it is now to see it here.")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Document not found · DocMind</title>'
            f'<link rel="stylesheet" href="{PREFIX}/static/viewer.css"></head><body><main>'
            f'<p class="docmind-note" role="status">{reason}</p></main></body></html>')


def _page(found: LibraryDocument, body: str, library: Path) -> str:
    """The viewer page: the file's name, where it is (an upload: DocMind's copy), "Open original", the content."""
    name = html.escape(found.name)
    path = html.escape(("A copy kept by DocMind: " if owns(found.source, library) else "") + str(found.source))
    # a PDF needs PDF.js: fetch and compile it while viewer.js loads, not after
    preload = f'<link rel="modulepreload" href="{PREFIX}/static/pdfjs/pdf.min.mjs">' if found.is_pdf else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · DocMind</title><link rel="stylesheet" href="{PREFIX}/static/viewer.css">{preload}</head>
<body><header class="docmind-bar">
<div class="docmind-title"><h1>{name}</h1><p class="docmind-path" title="Where the file is">{path}</p></div>
<div class="docmind-actions">
<button type="button" id="docmind-open-original" data-url="{PREFIX}/open/{found.id}">Open original</button>
<span id="docmind-open-status" role="status"></span></div></header>
<main id="docmind-document">{body}</main>
<script type="module" src="{PREFIX}/static/viewer.js"></script></body></html>"""
