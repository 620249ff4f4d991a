"""The Chats tab: list, search, rename, delete (with confirmation), export and import past chats.

The page says "chats" throughout; the scripting endpoints keep their names (``/sessions``,
``/rename_session``, ``/delete_session`` and ``/export_session``), which users' scripts depend on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import gradio as gr

from docmind.agent import Sessions, when_label
from docmind.ui.auth import current_user
from docmind.ui.context import AppContext
from docmind.ui.exports import export_url
from docmind.ui.feedback import shows_errors

COLUMNS = ["Chat", "Started", "Last active", "Messages"]
SEARCH_COLUMN = "Found text"


@dataclass
class SessionsTab:
    """The components other tabs wire to."""

    tab: gr.Tab
    table: gr.Dataframe
    selected: gr.Textbox
    open_button: gr.Button


def render(context: AppContext) -> SessionsTab:
    """Build the Sessions tab inside the current Blocks."""
    every = Sessions(context.db)

    def scoped(request: gr.Request) -> Sessions:
        """The chats of the request's user (all of them without logins)."""
        return every.for_owner(current_user(request))

    def listing(sessions: Sessions, query: str = "") -> tuple[dict, list[str]]:
        """The table (a "Found text" column only for a search) and the chat ids of its rows, in order."""
        listed = sessions.list()
        if not query.strip():
            data = [[s.title or "Untitled chat", when_label(s.created_at), when_label(s.updated_at), s.messages]
                    for s in listed]
            return {"headers": COLUMNS, "data": data}, [s.id for s in listed]
        hits: dict[str, str] = {}
        for hit in sessions.search(query):
            hits.setdefault(hit.session, hit.snippet)
        known = {s.id: s for s in listed}
        found = [sid for sid in hits if sid in known]
        data = [[known[sid].title or "Untitled chat", when_label(known[sid].created_at),
                 when_label(known[sid].updated_at), known[sid].messages, hits[sid]] for sid in found]
        return {"headers": [*COLUMNS, SEARCH_COLUMN], "data": data}, found

    def exports(sessions: Sessions, session_id: str) -> tuple[dict, dict]:
        """The export buttons: links to the owner-checked export route (docmind/ui/exports.py)."""
        if not session_id:
            return gr.update(link=None, interactive=False), gr.update(link=None, interactive=False)
        sessions.get(session_id)
        return (gr.update(link=export_url(session_id, "md"), interactive=True),
                gr.update(link=export_url(session_id, "json"), interactive=True))

    def describe(sessions: Sessions, session_id: str) -> str:
        if not session_id:
            return "Select a chat in the list."
        info = sessions.get(session_id)
        return (f"**{info.title or 'Untitled chat'}** · {info.messages} messages · "
                f"started {when_label(info.created_at)}")

    with gr.Tab("Chats", id="sessions") as tab:
        with gr.Row():
            query = gr.Textbox(placeholder="Search all chats…", show_label=False, scale=6, container=False)
            search = gr.Button("Search", scale=1)
            clear = gr.Button("Show all", scale=1)
        table = gr.Dataframe(  # filled per user when the tab opens
            value=None,
            headers=COLUMNS,
            interactive=False,
            wrap=True,
            elem_id="docmind-sessions-table",
        )
        row_ids = gr.State([])
        selected = gr.Textbox(visible=False, elem_id="docmind-sessions-selected")
        summary = gr.Markdown("Select a chat in the list.", elem_id="docmind-sessions-summary")
        with gr.Row():
            open_button = gr.Button("Open in Chat", variant="primary", interactive=False)
            export_md = gr.Button("Export Markdown", interactive=False, elem_id="docmind-export-md")
            export_json = gr.Button("Export JSON", interactive=False, elem_id="docmind-export-json")
            delete = gr.Button("Delete…", variant="stop", interactive=False)
        with gr.Row():
            new_title = gr.Textbox(placeholder="Select a chat, then edit its title here", show_label=False, scale=4,
                                   container=False, elem_id="docmind-sessions-title")
            rename = gr.Button("Rename", scale=1, interactive=False)
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm = gr.Button("Yes, delete it", variant="stop")
            cancel = gr.Button("Cancel")
        with gr.Row():
            importer = gr.UploadButton("Import a JSON export…", file_types=[".json"], file_count="single",
                                       elem_id="docmind-import")
            notice = gr.Markdown(elem_id="docmind-import-notice")

    def buttons(enabled: bool) -> list[dict]:
        return [gr.update(interactive=enabled) for _ in range(3)]

    def title_of(sessions: Sessions, session_id: str) -> str:
        return sessions.get(session_id).title if session_id else ""

    @shows_errors
    def select(ids: list[str], evt: gr.SelectData, request: gr.Request) -> tuple:
        sessions = scoped(request)
        row = evt.index[0] if evt.index else None
        session_id = ids[row] if row is not None and row < len(ids) else ""
        return (session_id, describe(sessions, session_id), *exports(sessions, session_id),
                *buttons(bool(session_id)), gr.update(visible=False), title_of(sessions, session_id))

    selection_outputs = [selected, summary, export_md, export_json, open_button, delete, rename, confirm_row,
                         new_title]
    table.select(select, row_ids, outputs=selection_outputs, api_visibility="private")

    @shows_errors
    def refresh(query_text: str, session_id: str, request: gr.Request) -> tuple:
        sessions = scoped(request)
        table_value, ids = listing(sessions, query_text)
        session_id = session_id if session_id in ids else ""
        return (table_value, ids, session_id, describe(sessions, session_id), *exports(sessions, session_id),
                *buttons(bool(session_id)))

    refresh_outputs = [table, row_ids, selected, summary, export_md, export_json, open_button, delete, rename]
    for trigger in (search.click, query.submit, tab.select):
        trigger(refresh, inputs=[query, selected], outputs=refresh_outputs, api_visibility="private")

    def show_all(session_id: str, request: gr.Request) -> tuple:
        return refresh("", session_id, request)

    clear.click(show_all, inputs=selected, outputs=refresh_outputs, api_visibility="private").then(
        lambda: "", outputs=query, api_visibility="private"
    )

    @shows_errors
    def do_rename(session_id: str, title: str, query_text: str, request: gr.Request) -> tuple:
        if not title.strip():
            raise gr.Error("Type the new title first.")
        info = scoped(request).rename(session_id, title)
        gr.Info(f"Chat renamed to “{info.title}”.", duration=4)
        return (info.title, *refresh(query_text, session_id, request))

    rename.click(do_rename, [selected, new_title, query], [new_title, *refresh_outputs], api_visibility="private")
    new_title.submit(do_rename, [selected, new_title, query], [new_title, *refresh_outputs], api_visibility="private")

    @shows_errors
    def ask_delete(session_id: str, request: gr.Request) -> tuple:
        info = scoped(request).get(session_id)
        text = f"Delete **{info.title or 'Untitled chat'}** and its {info.messages} messages? This cannot be undone."
        return gr.update(visible=True), text

    delete.click(ask_delete, selected, [confirm_row, confirm_text], api_visibility="private")
    cancel.click(lambda: gr.update(visible=False), outputs=confirm_row, api_visibility="private")

    @shows_errors
    def do_delete(session_id: str, query_text: str, request: gr.Request) -> tuple:
        scoped(request).delete(session_id)
        gr.Info("Chat deleted.")
        return (gr.update(visible=False), *refresh(query_text, "", request))

    confirm.click(do_delete, [selected, query], [confirm_row, *refresh_outputs], api_visibility="private")

    @shows_errors
    def do_import(path: str, query_text: str, request: gr.Request) -> tuple:
        info = scoped(request).import_json(path)
        return (f"Imported **{info.title or 'Untitled chat'}** ({info.messages} messages).",
                *refresh(query_text, info.id, request))

    importer.upload(do_import, [importer, query], [notice, *refresh_outputs], api_visibility="private")

    return SessionsTab(tab=tab, table=table, selected=selected, open_button=open_button)


def register_api(context: AppContext) -> None:
    """Scripting endpoints with stable names (see the README)."""
    every = Sessions(context.db)

    @shows_errors
    def list_sessions(request: gr.Request = None) -> list[dict]:
        """Every chat (of the logged-in user), most recently active first: id, title, created_at, updated_at,
        messages."""
        return [asdict(s) for s in every.for_owner(current_user(request)).list()]

    @shows_errors
    def rename_session(session_id: str, title: str, request: gr.Request = None) -> dict:
        """Give a chat a new title."""
        return asdict(every.for_owner(current_user(request)).rename(session_id, title))

    @shows_errors
    def delete_session(session_id: str, request: gr.Request = None) -> bool:
        """Delete a chat and its messages."""
        every.for_owner(current_user(request)).delete(session_id)
        return True

    @shows_errors
    def export_session(session_id: str, format: str = "md", request: gr.Request = None) -> str:
        """A chat as Markdown (format="md") or as the JSON that import reads (format="json")."""
        sessions = every.for_owner(current_user(request))
        if format == "json":
            return json.dumps(sessions.export_json(session_id), ensure_ascii=False, indent=2)
        return sessions.export_markdown(session_id)

    gr.api(list_sessions, api_name="sessions")
    gr.api(rename_session, api_name="rename_session")
    gr.api(delete_session, api_name="delete_session")
    gr.api(export_session, api_name="export_session")
