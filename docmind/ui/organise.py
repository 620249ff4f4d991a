"""The Documents tab's organising sections: collections, watched folders, and moving everything to
another computer (export and import). Each section is built by its own function from the cache APIs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import gradio as gr

from docmind.cache.collections import (
    add_to_collection,
    collection_documents,
    create_collection,
    delete_collection,
    list_collections,
    remove_from_collection,
    rename_collection,
)
from docmind.cache.documents import list_documents
from docmind.cache.transfer import export_everything, import_everything
from docmind.cache.watch import add_watched_folder, list_watched_folders, remove_watched_folder
from docmind.ui.auth import only_on_the_server
from docmind.ui.context import AppContext
from docmind.ui.feedback import shows_errors

COLLECTION_COLUMNS = ["Collection", "Documents", "Passages"]
FOLDER_COLUMNS = ["Folder", "Also put in collection", "State", "Documents", "Last problem"]
NO_COLLECTION = "(no collection)"
STATE_SECONDS = 3.0


def render(context: AppContext) -> None:
    """The three sections, each folded under a plain title, at the end of the Documents tab (call inside its
    ``gr.Tab``)."""
    sections = [
        ("Collections: groups of documents you can ask about on their own", "docmind-collections-section",
         render_collections),
        ("Watched folders: folders DocMind keeps up to date by itself", "docmind-watch-section",
         render_watched_folders),
        ("Move to another computer: export everything to one file, or import one", "docmind-move-section",
         render_move),
    ]
    for title, elem_id, build in sections:
        with gr.Accordion(title, open=False, elem_id=elem_id):
            build(context)


# ----- collections -----


def collection_rows(context: AppContext) -> list[list]:
    return [[c.name, c.documents, c.chunks] for c in list_collections(context.db)]


def collection_names(context: AppContext) -> list[str]:
    return [c.name for c in list_collections(context.db)]


def document_choices(context: AppContext) -> list[tuple[str, str]]:
    """Each document by file name, then each folder holding documents ("everything in ..."), by path."""
    sources = [doc.source for doc in list_documents(context.db)]
    library = str(context.library_dir.resolve())
    folders = sorted({str(Path(source).parent) for source in sources if not source.startswith(library)})
    return ([(f"{Path(source).name}  ({'uploaded' if source.startswith(library) else Path(source).parent})", source)
             for source in sources] + [(f"Everything in the folder {folder}", folder) for folder in folders])


def members_markdown(context: AppContext, name: str | None) -> str:
    if not name:
        return "Choose a collection to see its documents."
    sources = collection_documents(context.db, name)
    if not sources:
        return f"**{name}** is empty. Choose documents below and click **Add to collection**."
    return f"**{name}** holds: " + ", ".join(Path(source).name for source in sources)


def render_collections(context: AppContext) -> None:
    gr.Markdown("A collection is a group of your documents, for example *Taxes* or *Recipes*. "
                "In the Chat tab you can ask about one collection instead of all your documents. "
                "A document can be in several collections; deleting a collection keeps its documents.")
    table = gr.Dataframe(value=lambda: collection_rows(context), headers=COLLECTION_COLUMNS,
                         datatype=["str", "number", "number"], interactive=False, elem_id="docmind-collections")
    with gr.Row(equal_height=True):
        new_name = gr.Textbox(label="New collection", placeholder="Name, for example Taxes", scale=3)
        create = gr.Button("Create collection", scale=1)
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown(label="Collection", choices=collection_names(context), value=None, scale=2,
                             elem_id="docmind-collection-choice")
        rename_to = gr.Textbox(label="Rename it to", scale=2)
        rename = gr.Button("Rename", scale=1)
        delete = gr.Button("Delete collection", variant="stop", scale=1)
    members = gr.Markdown(members_markdown(context, None), elem_id="docmind-collection-members")
    with gr.Row(equal_height=True):
        picked = gr.Dropdown(label="Documents", choices=document_choices(context), multiselect=True, scale=4,
                             elem_id="docmind-collection-documents")
        add = gr.Button("Add to collection", scale=1)
        remove = gr.Button("Remove from collection", scale=1)
    outcome = gr.Markdown(elem_id="docmind-collection-outcome")

    def view(name: str | None, message: str = "") -> tuple:
        names = collection_names(context)
        name = name if name in names else None
        return (collection_rows(context), gr.update(choices=names, value=name), members_markdown(context, name),
                gr.update(choices=document_choices(context), value=[]), message)

    outputs = [table, chosen, members, picked, outcome]

    @shows_errors
    def do_create(name: str) -> tuple:
        made = create_collection(context.db, name)
        return (*view(made.name, f"✓ Created **{made.name}**. Now choose documents and click **Add to collection**."),
                "")

    @shows_errors
    def do_rename(name: str | None, new: str) -> tuple:
        renamed = rename_collection(context.db, _needs(name), new)
        return (*view(renamed.name, f"✓ Renamed **{name}** to **{renamed.name}**."), "")

    @shows_errors
    def do_delete(name: str | None) -> tuple:
        deleted = delete_collection(context.db, _needs(name))
        return view(None, f"✓ Deleted the collection **{deleted.name}**. Its documents are still in your library.")

    @shows_errors
    def do_add(name: str | None, sources: list[str] | None) -> tuple:
        result = add_to_collection(context.db, _needs(name), _chosen(sources))
        return view(name, f"✓ Added {_documents(len(result.changed))} to **{result.collection}**.")

    @shows_errors
    def do_remove(name: str | None, sources: list[str] | None) -> tuple:
        result = remove_from_collection(context.db, _needs(name), _chosen(sources))
        return view(name, f"✓ Took {_documents(len(result.changed))} out of **{result.collection}** "
                          "(they stay in your library).")

    create.click(do_create, new_name, [*outputs, new_name], api_visibility="private")
    new_name.submit(do_create, new_name, [*outputs, new_name], api_visibility="private")
    rename.click(do_rename, [chosen, rename_to], [*outputs, rename_to], api_visibility="private")
    delete.click(do_delete, chosen, outputs, api_visibility="private")
    add.click(do_add, [chosen, picked], outputs, api_visibility="private")
    remove.click(do_remove, [chosen, picked], outputs, api_visibility="private")
    chosen.input(lambda name: members_markdown(context, name), chosen, members, api_visibility="private")
    picked.focus(lambda: gr.update(choices=document_choices(context)), outputs=picked, api_visibility="private",
                 show_progress="hidden")  # documents added since the page was drawn
    chosen.focus(lambda: gr.update(choices=collection_names(context)), outputs=chosen, api_visibility="private",
                 show_progress="hidden")


def _needs(name: str | None) -> str:
    if not name:
        raise gr.Error("Choose a collection first.")
    return name


def _chosen(sources: list[str] | None) -> list[str]:
    if not sources:
        raise gr.Error("Choose one or more documents first.")
    return sources


def _documents(n: int) -> str:
    return "1 document" if n == 1 else f"{n} documents"


# ----- watched folders -----


def folder_rows(context: AppContext) -> list[list]:
    return [[f.path, f.collection or "", _state_text(f.state, f.waiting), f.files, f.last_error]
            for f in list_watched_folders(context.db)]


def _state_text(state: str, waiting: int) -> str:
    return f"{state}, {waiting} {'file' if waiting == 1 else 'files'} waiting" if waiting else state


def render_watched_folders(context: AppContext) -> None:
    gr.Markdown("While DocMind is open, it keeps these folders in step with your library: "
                "new and changed files are added, deleted files are removed. Changes made while DocMind was closed "
                "are picked up when it starts.")
    table = gr.Dataframe(value=lambda: folder_rows(context), headers=FOLDER_COLUMNS,
                         datatype=["str", "str", "str", "number", "str"], interactive=False, wrap=True,
                         elem_id="docmind-watched-folders")
    with gr.Row(equal_height=True):
        path = gr.Textbox(label="Folder to watch", placeholder="/home/me/Documents/Taxes", scale=4,
                          elem_id="docmind-watch-path")
        collection = gr.Dropdown(label="Also put its documents in", choices=[NO_COLLECTION, *collection_names(context)],
                                 value=NO_COLLECTION, scale=2)
        watch = gr.Button("Watch this folder", scale=1, elem_id="docmind-watch")
    with gr.Row(equal_height=True):
        stop = gr.Button("Stop watching the selected folder", interactive=False, scale=1)
        check = gr.Button("Check all folders now", scale=1)
        outcome = gr.Markdown(elem_id="docmind-watch-outcome")
    selected = gr.State("")
    timer = gr.Timer(STATE_SECONDS)

    @shows_errors
    def do_watch(folder: str, tie: str, request: gr.Request) -> tuple:
        only_on_the_server(request, "watching a folder of the server's disk", "`docmind watch add PATH`")
        if not folder.strip():
            raise gr.Error("Type or paste the folder's path first.")
        added = add_watched_folder(context.db, folder.strip(), None if tie == NO_COLLECTION else tie)
        context.watcher.scan_now()
        return folder_rows(context), "", f"✓ Watching **{added.path}**. Its files are being added now."

    def do_stop(folder: str, request: gr.Request) -> tuple:
        only_on_the_server(request, "choosing the watched folders", "`docmind watch remove PATH`")
        removed = remove_watched_folder(context.db, folder)
        return (folder_rows(context), gr.update(interactive=False), "",
                f"✓ Stopped watching **{removed.path}**. Its documents stay in your library.")

    def select(evt: gr.SelectData) -> tuple:
        row = evt.row_value or []
        return (row[0], gr.update(interactive=True), f"Selected: **{row[0]}**") if row else ("", gr.skip(), "")

    def do_check() -> str:
        context.watcher.scan_now()
        return "Checking every watched folder for changes…"

    watch.click(do_watch, [path, collection], [table, path, outcome], api_visibility="private")
    stop.click(shows_errors(do_stop), selected, [table, stop, selected, outcome], api_visibility="private")
    table.select(select, outputs=[selected, stop, outcome], api_visibility="private")
    check.click(do_check, outputs=outcome, api_visibility="private")
    timer.tick(lambda: folder_rows(context), outputs=table, api_visibility="private", show_progress="hidden")
    collection.focus(lambda: gr.update(choices=[NO_COLLECTION, *collection_names(context)]), outputs=collection,
                     api_visibility="private", show_progress="hidden")


# ----- moving to another computer -----


def render_move(context: AppContext) -> None:
    gr.Markdown("**Export everything** saves your documents, collections, watched "
                "folders and chats in one file. On the other computer, **Import** that file: into a new DocMind it "
                "restores everything; into one already in use it adds what is missing and keeps what is there.")
    with gr.Row(equal_height=True):
        export = gr.Button("Export everything", scale=1, elem_id="docmind-export")
        exported = gr.File(label="Your export file (click to save it)", interactive=False, scale=3, height=90,
                           elem_id="docmind-export-file")
    with gr.Row(equal_height=True):
        upload = gr.File(label="Export file to import", file_types=[".zip"], scale=3, height=90,
                         elem_id="docmind-import-file")
        run_import = gr.Button("Import", scale=1, elem_id="docmind-import")
    outcome = gr.Markdown(elem_id="docmind-transfer-outcome")

    @shows_errors
    def do_export(request: gr.Request) -> tuple:
        only_on_the_server(request, "exporting everything (every user's chats)", "`docmind export FILE`")
        stamp = datetime.now().strftime("%Y-%m-%d-%H%M")
        report = export_everything(context.db, context.settings.data_dir,
                                   context.upload_dir / f"docmind-export-{stamp}.zip")
        return report.file, (f"✓ Exported {_documents(report.documents)} and {report.sessions} chats "
                             f"({report.bytes / 1048576:.1f} MB). Click the file to save it.")

    @shows_errors
    def do_import(file: str | None, request: gr.Request) -> str:
        only_on_the_server(request, "importing everything", "`docmind import FILE`")
        if not file:
            raise gr.Error("Choose an export file first (one made with Export everything).")
        report = import_everything(context.db, context.settings.data_dir, Path(file))
        return (f"✓ Imported {_documents(report.documents_added)} ({report.documents_skipped} were already here) "
                f"and {report.sessions_added} chats.")

    export.click(do_export, outputs=[exported, outcome], api_visibility="private")
    run_import.click(do_import, upload, outcome, api_visibility="private")
