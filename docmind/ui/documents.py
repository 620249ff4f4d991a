"""The Documents tab: drop files or a folder, watch each file's progress, list and remove documents.

The upload event is also the scripting endpoint ``/upload`` (files → per-file status rows when done).
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from docmind.cache.documents import library_stats, list_documents, remove_document
from docmind.ui.context import AppContext
from docmind.ui.feedback import shows_errors
from docmind.ui.ingest_queue import FAILED, FileJob
from docmind.ui.status import BUSY_SECONDS, StatusLine, poll_interval

JOB_COLUMNS = ["File", "Status"]
LIBRARY_COLUMNS = ["File", "Chunks", "Added", "Path"]
POLL_SECONDS = 0.5
FILE_TYPES_TEXT = "PDF, Word (.docx), PowerPoint (.pptx), web pages (.html), Markdown, reStructuredText, text and CSV"


def _job_rows(jobs: list[FileJob]) -> list[list]:
    return [[job.name, ("⚠ " if job.state == FAILED else "") + job.detail] for job in reversed(jobs)]


def current_batch(jobs: list[FileJob]) -> list[FileJob]:
    """The jobs the summary describes: the uploads still being worked on, else the latest upload."""
    if not jobs:
        return []
    unfinished = [job.batch for job in jobs if not job.finished]
    first = min(unfinished) if unfinished else jobs[-1].batch
    return [job for job in jobs if job.batch >= first]


def summary_markdown(jobs: list[FileJob], documents: int, chunks: int) -> str:
    """What the latest upload is doing (or did), then the whole library's size."""
    library = f"**Your library:** {_count(documents, 'document')}, {_count(chunks, 'chunk')}."
    batch = current_batch(jobs)
    if not batch:
        return library
    working = [job for job in batch if not job.finished]
    failed = sum(job.state == FAILED for job in batch)
    done = len(batch) - len(working)
    failures = f" · **{failed} failed** (see the reason next to each file)" if failed else ""
    if working:
        current = working[0]
        upload = f"⟳ Adding documents: {done} of {len(batch)} done · now **{current.name}** ({current.detail}){failures}"
    elif len(batch) == 1:
        upload = f"{'⚠' if failed else '✓'} **{batch[0].name}**: {batch[0].detail}."
    else:
        upload = f"✓ All {len(batch)} files of this upload processed{failures}."
    if not working and failed < len(batch):
        upload += " You can ask about them in the Chat tab."
    return f"{upload}\n\n{library}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def render(context: AppContext, status: StatusLine) -> gr.Tab:
    """Build the Documents tab inside the current Blocks; ``status`` is redrawn after uploads and removals."""

    def library_rows() -> list[list]:
        return [
            [Path(doc.source).name, doc.chunks, doc.ingested_at[:16].replace("T", " "), doc.source]
            for doc in list_documents(context.db)
        ]

    with gr.Tab("Documents", id="documents") as tab:
        gr.Markdown(f"Add documents to ask questions about them: {FILE_TYPES_TEXT}.")
        with gr.Row(equal_height=True):
            files = gr.File(
                file_count="multiple",
                label="Drop files here, or click to choose",
                height=150,
                elem_id="docmind-upload",
                scale=4,
            )
            folder = gr.UploadButton("Add a whole folder…", file_count="directory", scale=1)
        summary = gr.Markdown(elem_id="docmind-ingest-summary")
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
            value=library_rows,
            headers=LIBRARY_COLUMNS,
            datatype=["str", "number", "str", "str"],
            interactive=False,
            wrap=True,
            elem_id="docmind-library",
        )
        selected = gr.Textbox(visible=False)
        with gr.Row():
            remove = gr.Button("Remove selected document…", variant="stop", interactive=False)
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm = gr.Button("Yes, remove it", variant="stop")
            cancel = gr.Button("Cancel")
        seen = gr.State("")
        timer = gr.Timer(BUSY_SECONDS)  # then every few seconds unless files are being ingested

    def view(jobs: list[FileJob]) -> tuple:
        return _job_rows(jobs), library_rows(), summary_markdown(jobs, *context.library_size())

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
            return (gr.skip(), gr.skip(), gr.skip(), last, poll_interval(context))
        return (*view(jobs), signature, poll_interval(context))

    timer.tick(refresh, seen, [*outputs, seen, timer], api_visibility="private", show_progress="hidden")
    tab.select(lambda: view(context.ingest.jobs()), outputs=outputs, api_visibility="private")

    def select(evt: gr.SelectData) -> tuple:
        source = evt.row_value[-1] if evt.row_value else ""
        return source, gr.update(interactive=bool(source)), gr.update(visible=False)

    library.select(select, outputs=[selected, remove, confirm_row], api_visibility="private")

    def ask_remove(source: str) -> tuple:
        return gr.update(visible=True), f"Remove **{Path(source).name}** from the library? Chats keep their answers."

    remove.click(ask_remove, selected, [confirm_row, confirm_text], api_visibility="private")
    cancel.click(lambda: gr.update(visible=False), outputs=confirm_row, api_visibility="private")

    @shows_errors
    def do_remove(source: str) -> tuple:
        chunks = remove_document(context.db, source, context.library_dir)
        gr.Info(f"Removed {Path(source).name} ({chunks} chunks).")
        return gr.update(visible=False), *view(context.ingest.jobs())[1:], "", gr.update(interactive=False)

    removed = confirm.click(do_remove, selected, [confirm_row, library, summary, selected, remove],
                            api_visibility="private")
    status.follow(removed)
    return tab
