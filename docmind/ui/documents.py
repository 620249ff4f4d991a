"""The Documents tab: drop files or a folder, watch each file's progress, list and remove documents.

The upload event is also the scripting endpoint ``/upload`` (files → per-file status rows when done).
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from docmind.cache.documents import DocumentInfo, library_stats, list_documents, remove_document
from docmind.ui import organise
from docmind.ui.context import AppContext
from docmind.ui.feedback import shows_errors
from docmind.ui.ingest_queue import CANCELLED, FAILED, FileJob
from docmind.ui.status import BUSY_SECONDS, StatusLine, poll_interval
from docmind.ui.viewer import viewer_url

JOB_COLUMNS = ["File", "Status"]
LIBRARY_COLUMNS = ["Document", "Passages", "Added", "Where it came from"]
UPLOADED = "uploaded in this app"
REMOVE_HINT = "Click a document in the list above to choose the one to remove."
POLL_SECONDS = 0.5
WARNING_STYLE = ("border:1px solid #b45309;background:#fffbeb;color:#78350f;border-radius:6px;"
                 "padding:0 0.8em")
FILE_TYPES_TEXT = ("PDF (scanned ones too), Word (.docx), PowerPoint (.pptx), web pages (.html), Markdown, "
                   "reStructuredText, text, CSV and images (PNG, JPEG, TIFF, WebP)")


def _job_rows(jobs: list[FileJob]) -> list[list]:
    return [[job.name, ("⚠ " if job.state == FAILED and job.detail != CANCELLED else "") + job.detail]
            for job in reversed(jobs)]


def current_batch(jobs: list[FileJob]) -> list[FileJob]:
    """The jobs the summary describes: the uploads still being worked on, else the latest upload."""
    if not jobs:
        return []
    unfinished = [job.batch for job in jobs if not job.finished]
    first = min(unfinished) if unfinished else jobs[-1].batch
    return [job for job in jobs if job.batch >= first]


def summary_markdown(jobs: list[FileJob], documents: int, passages: int) -> str:
    """What the latest upload is doing (or did), then the whole library's size.

    A finished upload says how many files were added and how many failed; with any failure it is a warning.
    Files left out because the user pressed "Stop adding files" are counted as stopped, not as failures.
    """
    library = f"**Your library:** {_count(documents, 'document')}, {_count(passages, 'passage')}."
    batch = current_batch(jobs)
    if not batch:
        return library
    working = [job for job in batch if not job.finished]
    stopped = sum(job.detail == CANCELLED for job in batch)
    failed = sum(job.state == FAILED for job in batch) - stopped
    added = len(batch) - len(working) - failed - stopped
    failures = f" · **{failed} failed** (see the reason next to each file)" if failed else ""
    if working:
        current = working[0]
        upload = (f"⟳ Adding documents: {len(batch) - len(working)} of {len(batch)} done · now **{current.name}** "
                  f"({current.detail}){failures}")
    elif stopped:
        them = "it" if stopped == 1 else "them"
        upload = f"**Stopped: {_count(stopped, 'file')} not added** (add {them} again to finish)"
        upload += f", {added} added" if added else ""
        upload += f", {failed} failed (see the reason next to each file)." if failed else "."
    elif len(batch) == 1:
        upload = f"{'⚠' if failed else '✓'} **{batch[0].name}**: {batch[0].detail}."
    elif failed == len(batch):
        upload = f"⚠ **None of the {len(batch)} files could be added** (see the reason next to each file)."
    elif failed:
        upload = (f"⚠ **{_count(added, 'file')} of {len(batch)} added, {failed} failed** "
                  "(see the reason next to each file).")
    else:
        upload = f"✓ All {len(batch)} files added."
    if not working and added:
        upload += f" You can ask about {'it' if added == 1 else 'them'} in the Chat tab."
    return f"{_notice(upload, failed)}\n\n{library}"


def _notice(text: str, failed: int) -> str:
    """``text`` styled as a warning (an error box) when files failed, else as it is."""
    if not failed:
        return text
    return f'<div class="docmind-warning" role="alert" style="{WARNING_STYLE}">\n\n{text}\n\n</div>'


def library_rows(documents: list[DocumentInfo], uploads: Path) -> list[list]:
    """The library table: the user's file name, passages, when added, and where the file came from.

    Uploads are stored as ``<library>/<hash>/<original name>``: they show their original name and
    "uploaded"; files ingested from a folder (command line, watched folders) show their real path.
    """
    return [[Path(doc.source).name, doc.chunks, doc.ingested_at[:16].replace("T", " "),
             UPLOADED if _is_upload(doc.source, uploads) else doc.source] for doc in documents]


def _is_upload(source: str, uploads: Path) -> bool:
    return Path(source).parent.parent == uploads.resolve()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render(context: AppContext, status: StatusLine) -> gr.Tab:
    """Build the Documents tab inside the current Blocks; ``status`` is redrawn after uploads and removals."""

    def current_documents() -> list[DocumentInfo]:
        return list_documents(context.db)

    with gr.Tab("Documents", id="documents") as tab:
        gr.Markdown(f"Add documents to ask questions about them: {FILE_TYPES_TEXT}.")
        with gr.Row(equal_height=True):
            files = gr.File(  # Gradio's own text inside says "Drop files here - or - click to upload"
                file_count="multiple",
                label="Files to add",
                elem_id="docmind-upload",
                scale=4,
            )
            folder = gr.UploadButton("Add a whole folder…", file_count="directory", scale=1)
        with gr.Row(equal_height=True):
            summary = gr.Markdown(elem_id="docmind-ingest-summary")
            stop = gr.Button("Stop adding files", variant="secondary", visible=False, scale=0,
                             elem_id="docmind-ingest-stop")
        jobs_table = gr.Dataframe(
            value=lambda: _job_rows(context.ingest.jobs()),
            headers=JOB_COLUMNS,
            label="Recent uploads (newest first)",
            interactive=False,
            wrap=True,
            elem_id="docmind-ingest-jobs",
        )
        gr.Markdown("### Your library")
        library = gr.Dataframe(
            value=lambda: library_rows(current_documents(), context.library_dir),
            headers=LIBRARY_COLUMNS,
            datatype=["str", "number", "str", "str"],
            interactive=False,
            wrap=True,
            elem_id="docmind-library",
        )
        selected = gr.Textbox(visible=False)
        view_url = gr.Textbox(visible=False)
        with gr.Row(equal_height=True):
            view_button = gr.Button("View selected document", interactive=False, scale=1, elem_id="docmind-view")
            remove = gr.Button("Remove selected document…", variant="stop", interactive=False, scale=1)
            remove_hint = gr.Markdown(REMOVE_HINT, elem_id="docmind-remove-hint")
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm = gr.Button("Yes, remove it", variant="stop")
            cancel = gr.Button("Cancel")
        seen = gr.State("")
        timer = gr.Timer(BUSY_SECONDS)  # then every few seconds unless files are being ingested
        organise.render(context)  # collections, watched folders, export and import

    def view(jobs: list[FileJob]) -> tuple:
        return (_job_rows(jobs), library_rows(current_documents(), context.library_dir),
                summary_markdown(jobs, *context.library_size()))

    def upload(paths: list[str] | None):
        """Add files to the library; streams each file's status until all of them are done."""
        if not paths:
            yield view(context.ingest.jobs())
            return
        batch = context.ingest.submit(paths)
        while not all(job.finished for job in batch):
            yield view(context.ingest.jobs())
            time.sleep(POLL_SECONDS)
        yield view(context.ingest.jobs())

    outputs = [jobs_table, library, summary]
    uploaded = files.upload(upload, inputs=files, outputs=outputs, api_name="upload")
    uploaded.then(lambda: None, outputs=files, api_visibility="private")
    folder_uploaded = folder.upload(upload, inputs=folder, outputs=outputs, api_visibility="private")
    status.hurry(files.upload, folder.upload)
    status.follow(uploaded, folder_uploaded)

    def refresh(last: str) -> tuple:
        jobs = context.ingest.jobs()
        signature = repr([(job.id, job.detail) for job in jobs]) + repr(library_stats(context.db))
        if signature == last:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), last, poll_interval(context))
        return (*view(jobs), gr.update(visible=any(not job.finished for job in jobs)), signature,
                poll_interval(context))

    timer.tick(refresh, seen, [*outputs, stop, seen, timer], api_visibility="private", show_progress="hidden")
    tab.select(lambda: view(context.ingest.jobs()), outputs=outputs, api_visibility="private", show_progress="hidden")

    def stop_adding() -> tuple:
        """Stop the upload being added and drop those waiting; the scripting endpoint ``/stop_adding``."""
        context.ingest.cancel()
        return (*view(context.ingest.jobs()), gr.update(visible=False))

    stop.click(stop_adding, outputs=[*outputs, stop], api_name="stop_adding")

    def select(evt: gr.SelectData) -> tuple:
        """The document of the clicked row (its row number, checked against the row's values)."""
        documents = current_documents()
        rows = library_rows(documents, context.library_dir)
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not (isinstance(row, int) and row < len(rows) and rows[row] == list(evt.row_value or [])):
            matches = [n for n, values in enumerate(rows) if values == list(evt.row_value or [])]
            row = matches[0] if matches else None
        if row is None:
            return "", gr.update(interactive=False), gr.update(visible=False), REMOVE_HINT
        source = documents[row].source
        return (source, gr.update(interactive=True), gr.update(visible=False),
                f"Selected: **{Path(source).name}**")

    library.select(select, outputs=[selected, remove, confirm_row, remove_hint], api_visibility="private")

    # View: the selected document in the viewer, at its first page (docmind/ui/viewer.py, static/panel.js)
    selected.change(lambda source: gr.update(interactive=bool(source)), selected, view_button, api_visibility="private")
    view_button.click(lambda source: viewer_url(source) if source else "", selected, view_url,
                      api_visibility="private").then(None, view_url, js="(url) => window.docmindOpenViewer(url)")

    def ask_remove(source: str) -> tuple:
        return gr.update(visible=True), f"Remove **{Path(source).name}** from the library? Chats keep their answers."

    remove.click(ask_remove, selected, [confirm_row, confirm_text], api_visibility="private")
    cancel.click(lambda: gr.update(visible=False), outputs=confirm_row, api_visibility="private")

    @shows_errors
    def do_remove(source: str) -> tuple:
        remove_document(context.db, source, context.library_dir)
        return (gr.update(visible=False), *view(context.ingest.jobs())[1:], "", gr.update(interactive=False),
                f"✓ Removed **{Path(source).name}** from the library. {REMOVE_HINT}")

    removed = confirm.click(do_remove, selected, [confirm_row, library, summary, selected, remove, remove_hint],
                            api_visibility="private")
    status.follow(removed)
    return tab
