"""The ``docmind`` command line. It drives the same core as the app.

Heavy libraries (torch, transformers, gradio) are imported only inside the commands that need them.
``--json`` prints one JSON document on stdout; progress and logs go to stderr.
Exit codes: 0 ok, 1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docmind import __version__

log = logging.getLogger("docmind")


class CommandError(Exception):
    """A failure to report to the user as one line on stderr (exit code 1)."""


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON or through ``text`` for people."""
    if as_json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text(data))


def _settings():
    from docmind.config import load_settings

    return load_settings()


def _database():
    from docmind.storage import open_database

    return open_database(_settings().db_path)


# --- commands -------------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _settings()
    db = _database()
    count = lambda table: db.read(f"SELECT COUNT(*) FROM {table}")[0][0]  # noqa: E731
    report = {
        "version": __version__,
        "data_dir": str(settings.data_dir),
        "journal_mode": db.read("PRAGMA journal_mode")[0][0],
        "integrity": db.read("PRAGMA integrity_check")[0][0],
        "documents": count("documents"),
        "chunks": count("chunks"),
        "sessions": count("sessions"),
        "model": str(settings.model_path or settings.model),
        "device": _device_summary(),
    }
    emit(report, args.json, lambda r: "\n".join(f"{k:>13}: {v}" for k, v in r.items()))
    return 0 if report["integrity"] == "ok" else 1


def _device_summary() -> str:
    try:
        from docmind.model.hardware import detect_hardware
    except ImportError:
        return "unknown"
    return detect_hardware().summary


def cmd_backup(args: argparse.Namespace) -> int:
    dest = _database().backup(Path(args.dest).expanduser())
    print(f"Backed up to {dest}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from docmind.ui import serve
    from docmind.ui.launch_guard import AppInstanceLock, available_port, log_to_file

    settings = _settings()
    instance = AppInstanceLock(settings.data_dir)
    if not instance.acquire():  # one app per data dir: show the one that runs
        running = instance.running_instance()
        if running is None:
            raise CommandError("DocMind is still starting for this data dir; wait a moment and start it again.")
        print(f"DocMind is already running at {running.url}", file=sys.stderr, flush=True)
        if not args.no_browser:
            import webbrowser

            webbrowser.open(running.url)
        return 0
    with instance:
        log_path = log_to_file(settings.data_dir)
        host = args.host or settings.host
        try:
            app = serve(
                settings,
                host=host,
                port=available_port(host, args.port if args.port is not None else settings.port),
                open_browser=not args.no_browser,
            )
        except Exception:
            log.exception("DocMind could not start")
            raise
        instance.publish(app.url)
        log.info("DocMind %s is running at %s", __version__, app.url)
        print(f"DocMind is running at {app.url}  (press Ctrl+C to stop; log: {log_path})", file=sys.stderr, flush=True)
        app.wait()
    return 0


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; anything else exposes your data)")
    parser.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="do not open the browser")


# --- sessions ---------------------------------------------------------------------------------------


def _sessions():
    from docmind.agent.sessions import Sessions

    return Sessions(_database())


def _session_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report unknown ids, bad exports and busy sessions as one line (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        from docmind.agent.sessions import InvalidExportError, UnknownSessionError
        from docmind.agent.turns import SessionBusyError

        try:
            return handler(args)
        except (UnknownSessionError, InvalidExportError, SessionBusyError) as error:
            raise CommandError(str(error)) from error

    return run


def _session_row(s: Any) -> dict[str, Any]:
    return {"id": s.id, "title": s.title, "created_at": s.created_at, "updated_at": s.updated_at, "messages": s.messages}


def cmd_sessions_list(args: argparse.Namespace) -> int:
    rows = [_session_row(s) for s in _sessions().list()]
    emit(rows, args.json, lambda rs: "\n".join(
        f"{r['id']}  {r['updated_at'][:16].replace('T', ' ')}  {r['messages']:>4} msgs  {r['title'] or '(untitled)'}"
        for r in rs) or "No sessions yet. Start one with `docmind ask QUESTION`.")
    return 0


def cmd_sessions_show(args: argparse.Namespace) -> int:
    sessions = _sessions()
    info = sessions.get(args.id)
    messages = [
        {"role": m.role, "content": m.content, "thinking": m.thinking, "created_at": m.created_at,
         "status": m.status, "citations": m.extra.get("citations", [])}
        for m in sessions.messages(info.id)
    ]
    data = {"id": info.id, "title": info.title, "messages": messages}
    if args.json:
        emit(data, True, str)
    else:
        sys.stdout.write(sessions.export_markdown(info.id))
    return 0


def cmd_sessions_rename(args: argparse.Namespace) -> int:
    info = _sessions().rename(args.id, args.title)
    emit(_session_row(info), args.json, lambda r: f"Renamed {r['id']} to {r['title']!r}")
    return 0


def cmd_sessions_delete(args: argparse.Namespace) -> int:
    _sessions().delete(args.id)
    emit({"id": args.id, "deleted": True}, args.json, lambda r: f"Deleted session {r['id']}")
    return 0


def cmd_sessions_export(args: argparse.Namespace) -> int:
    sessions = _sessions()
    if args.format == "json":
        text = json.dumps(sessions.export_json(args.id), ensure_ascii=False, indent=2) + "\n"
    else:
        text = sessions.export_markdown(args.id)
    if args.output:
        Path(args.output).expanduser().write_text(text, encoding="utf-8")
        print(f"Exported session {args.id} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_sessions_import(args: argparse.Namespace) -> int:
    info = _sessions().import_json(Path(args.file).expanduser())
    emit(_session_row(info), args.json, lambda r: f"Imported session {r['id']}: {r['title'] or '(untitled)'}")
    return 0


def cmd_sessions_search(args: argparse.Namespace) -> int:
    hits = [
        {"session": h.session, "title": h.title, "role": h.role, "snippet": h.snippet, "created_at": h.created_at}
        for h in _sessions().search(" ".join(args.query), limit=args.limit)
    ]
    emit(hits, args.json, lambda hs: "\n".join(
        f"{h['session']}  {h['role']:<9}  {h['title'] or '(untitled)'}\n    {h['snippet']}" for h in hs)
        or "No messages match.")
    return 0


def _add_sessions_commands(sub: Any) -> None:
    sessions = sub.add_parser("sessions", help="list, show, rename, delete, export, import and search chats",
                              description="list, show, rename, delete, export, import and search chats")
    actions = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, handler: Callable[[argparse.Namespace], int], help: str, json_flag: bool = True):
        p = actions.add_parser(name, help=help, description=help)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.set_defaults(handler=_session_errors(handler))
        return p

    action("list", cmd_sessions_list, "list sessions, most recent first")
    action("show", cmd_sessions_show, "print a session's messages").add_argument("id")
    rename = action("rename", cmd_sessions_rename, "give a session a new title")
    rename.add_argument("id")
    rename.add_argument("title")
    action("delete", cmd_sessions_delete, "delete a session and its messages").add_argument("id")
    export = action("export", cmd_sessions_export, "export a session as Markdown or JSON", json_flag=False)
    export.add_argument("id")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    action("import", cmd_sessions_import, "import a session from a JSON export").add_argument("file")
    search = action("search", cmd_sessions_search, "full-text search across all sessions' messages")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=50)


# --- library: ingest, search, docs ------------------------------------------------------------------


def _library_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report a missing embedding model or an unknown document as one line (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        from docmind.cache import DocumentNotFoundError, EmbeddingModelError

        try:
            return handler(args)
        except (DocumentNotFoundError, EmbeddingModelError) as error:
            raise CommandError(str(error)) from error

    return run


def _ingest_text(report: dict[str, Any]) -> str:
    lines = [
        f"{report['files_seen']} files: {report['files_new']} new, {report['files_changed']} changed, "
        f"{report['files_unchanged']} unchanged, {len(report['files_failed'])} failed, "
        f"{report['files_skipped']} skipped (hidden or unsupported)",
        f"{report['chunks_added']} chunks added, {report['chunks_removed']} removed, "
        f"{report['embeddings_computed']} embeddings computed in {report['seconds']:.1f} s",
    ]
    lines += [f"failed: {failure['path']}: {failure['error']}" for failure in report["files_failed"]]
    return "\n".join(lines + report["notices"])


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from docmind.cache import Ingestor

    ingestor = Ingestor(_settings(), _database())
    with tqdm(unit="file", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:

        def progress(event: Any) -> None:
            bar.total = event.files_total
            bar.n = event.files_done
            name = Path(event.current_file).name if event.current_file else ""
            bar.set_postfix_str(f"{event.chunks} chunks {name}"[:60], refresh=False)
            bar.refresh()

        report = ingestor.ingest(args.paths, progress)
    data = report.to_json()
    for notice in report.notices:
        print(f"docmind: {notice}", file=sys.stderr)
    emit(data, args.json, _ingest_text)
    if not report.succeeded:
        reason = (f"{len(report.files_failed)} failed" if report.files_failed
                  else f"no supported files found, {report.files_skipped} skipped")
        print(f"docmind: error: nothing could be ingested ({reason})", file=sys.stderr)
        return 1
    return 0


def _search_text(results: list[dict[str, Any]]) -> str:
    if not results:
        return "No passages match."
    return "\n\n".join(
        f"[{r['rank']}] {r['source']}" + (f", page {r['page']}" if r["page"] is not None else "")
        + f"  (score {r['score']:.4f})\n    " + " ".join(r["text"].split())[:300]
        for r in results
    )


def cmd_search(args: argparse.Namespace) -> int:
    from docmind.cache import Searcher

    if args.queries:
        queries = [line.strip() for line in Path(args.queries).expanduser().read_text(encoding="utf-8").splitlines()]
        queries = [query for query in queries if query]
    else:
        queries = args.query
    if not queries:
        raise CommandError("give a QUERY or --queries FILE with one query per line")
    searcher = Searcher(_settings(), _database())
    results = [
        [citation.to_json(rank) for rank, citation in enumerate(searcher.search(query, args.k), start=1)]
        for query in queries
    ]
    if len(results) == 1 and not args.queries:
        emit(results[0], args.json, _search_text)
    else:
        emit(results, args.json, lambda all_results: "\n\n".join(
            f"== {query}\n{_search_text(found)}" for query, found in zip(queries, all_results)))
    return 0


def cmd_docs_list(args: argparse.Namespace) -> int:
    from docmind.cache import list_documents

    rows = [info.to_json() for info in list_documents(_database())]
    emit(rows, args.json, lambda rs: "\n".join(
        f"{r['chunks']:>6} chunks  {r['ingested_at'][:16].replace('T', ' ')}  {r['source']}" for r in rs)
        or "No documents yet. Add some with `docmind ingest PATH`.")
    return 0


def cmd_docs_remove(args: argparse.Namespace) -> int:
    from docmind.cache import remove_documents

    removed = remove_documents(_database(), args.path)
    emit({"removed": removed}, args.json, lambda r: "\n".join(f"Removed {source}" for source in r["removed"]))
    return 0


def _add_library_commands(sub: Any) -> None:
    def command(parent: Any, name: str, handler: Callable[[argparse.Namespace], int], help: str):
        p = parent.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.set_defaults(handler=_library_errors(handler))
        return p

    ingest = command(sub, "ingest", cmd_ingest, "add files and folders to the library (unchanged files are skipped)")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    search = command(sub, "search", cmd_search, "find the passages that best match each query (no model needed)")
    search.add_argument("query", nargs="*", metavar="QUERY", help="one or more queries (quote a query with spaces)")
    search.add_argument("--queries", metavar="FILE", help="read queries from FILE, one per line")
    search.add_argument("-k", type=int, default=5, help="passages per query (default 5)")
    docs = sub.add_parser("docs", help="list or remove documents in the library",
                          description="list or remove documents in the library")
    actions = docs.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(actions, "list", cmd_docs_list, "list the documents in the library")
    remove = command(actions, "remove", cmd_docs_remove, "remove a document, or every document under a folder")
    remove.add_argument("path", metavar="PATH")


# --- model ------------------------------------------------------------------------------------------


def _model_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report model-layer failures (no model, damaged files, no disk, network) as one line (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        from docmind.model.errors import ModelError

        try:
            return handler(args)
        except ModelError as error:
            raise CommandError(str(error)) from error

    return run


def cmd_model_status(args: argparse.Namespace) -> int:
    from docmind.model.status import model_status

    status = model_status(_settings()).to_dict()
    emit(status, args.json, lambda s: "\n".join(f"{k:>18}: {v}" for k, v in s.items()))
    return 0


def cmd_model_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from docmind.model.download import download_model
    from docmind.model.registry import resolve_model

    choice = resolve_model(_settings())
    if choice.local:
        raise CommandError(f"DOCMIND_MODEL_PATH points at {choice.path}; there is nothing to download.")
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=choice.name, file=sys.stderr, disable=None)

    def progress(p: Any) -> None:
        bar.total = p.bytes_total
        bar.n = p.bytes_done
        bar.set_postfix_str(p.file, refresh=False)
        bar.refresh()

    try:
        report = download_model(choice.name, choice.path, revision=args.revision, progress=progress)
    finally:
        bar.close()
    emit(vars(report), args.json, lambda r: f"Downloaded {r['model']} to {r['path']} "
         f"({r['bytes_downloaded']} bytes fetched, {r['bytes_resumed']} already on disk).")
    return 0


def cmd_model_verify(args: argparse.Namespace) -> int:
    from docmind.model.download import verify_model
    from docmind.model.registry import resolve_model

    choice = resolve_model(_settings())
    report = verify_model(choice.name, choice.path, repair=not choice.local)
    emit(report.to_dict(), args.json, lambda r: "\n".join(
        [f"{'ok' if f['ok'] else 'BAD'}  {f['name']}" + (f"  ({f['problem']})" if f["problem"] else "")
         for f in r["files"]] + [f"{r['model']}: " + ("all files verified" if r["ok"] else
                                 "damaged; run `docmind model download` to fetch the bad files again")]))
    return 0 if report.ok else 1


def _add_model_commands(sub: Any) -> None:
    model = sub.add_parser("model", help="download, check and verify the language model",
                           description="download, check and verify the language model")
    actions = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    for name, handler, help in (
        ("status", cmd_model_status, "which model is chosen, whether it is on disk, what this machine suits"),
        ("download", cmd_model_download, "download the chosen model (resumes an interrupted download)"),
        ("verify", cmd_model_verify, "re-check the model files' sizes and checksums"),
    ):
        p = actions.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.set_defaults(handler=_model_errors(handler))
        if name == "download":
            p.add_argument("--revision", default="main", help="hub branch, tag or commit (default main)")


# --- ask ----------------------------------------------------------------------------------------------


def cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from docmind.agent.chat import ChatService, EmptyQuestionError, QuestionTooLongError
    from docmind.agent.sessions import UnknownSessionError
    from docmind.agent.turns import SessionBusyError

    service = ChatService(_settings())
    session_id = args.session
    if session_id is None and not args.new_session:
        recent = service.sessions.list()
        session_id = recent[0].id if recent else None
    try:
        done = asyncio.run(_ask(service, session_id, " ".join(args.question), args.json))
    except (EmptyQuestionError, QuestionTooLongError, UnknownSessionError, SessionBusyError) as error:
        raise CommandError(str(error)) from error
    if args.json:
        emit(done.to_json(), True, str)
        return 0
    print(done.answer)
    if done.citations:
        print("\nSources:")
        for p in done.citations:
            print(f"  [{p.number}] {p.source}" + (f", page {p.page}" if p.page else ""))
    print(f"\nsession {done.session_id} · {done.seconds:.1f} s", file=sys.stderr)
    return 0


async def _ask(service: Any, session_id: str | None, question: str, quiet: bool) -> Any:
    """Run one turn; show thinking and notices on stderr as they stream (unless ``--json``)."""
    from docmind.agent.events import Done, Notice, ThinkingToken, ToolCalled

    done = None
    async for event in service.chat(session_id, question):
        if isinstance(event, Done):
            done = event
        elif quiet:
            continue
        elif isinstance(event, Notice):
            print(f"note: {event.text}", file=sys.stderr)
        elif isinstance(event, ThinkingToken):
            print(event.text, end="", file=sys.stderr, flush=True)
        elif isinstance(event, ToolCalled):
            print(f"\n[{event.tool} {json.dumps(event.arguments, ensure_ascii=False)}]", file=sys.stderr)
    if not quiet:
        print(file=sys.stderr)
    return done


def _add_ask_command(sub: Any) -> None:
    ask = sub.add_parser("ask", help="ask a question about your documents",
                         description="Ask a question about your documents. Continues the most recent session "
                                     "unless --session or --new-session is given.")
    ask.add_argument("question", nargs="+", help="the question")
    which = ask.add_mutually_exclusive_group()
    which.add_argument("--session", help="the session to continue (see `docmind sessions list`)")
    which.add_argument("--new-session", action="store_true", help="start a new session")
    ask.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    ask.set_defaults(handler=cmd_ask)


# --- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docmind", description="Chat with your documents, offline.")
    parser.add_argument("--version", action="version", version=f"DocMind {__version__}")
    parser.add_argument("--data-dir", help="where DocMind keeps its data (env DOCMIND_DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str, json_flag: bool = True):
        p = sub.add_parser(name, help=help, description=help)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        p.set_defaults(handler=handler)
        return p

    command("doctor", cmd_doctor, "check the data dir and database")
    for name in ("serve", "app"):
        _add_serve_options(command(name, cmd_serve, "start the DocMind app in your browser", json_flag=False))
    backup = command("backup", cmd_backup, "copy the database while DocMind runs", json_flag=False)
    backup.add_argument("dest", help="file or folder to write the backup to")
    _add_sessions_commands(sub)
    _add_ask_command(sub)
    _add_library_commands(sub)
    _add_model_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ["DOCMIND_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    logging.basicConfig(
        level=logging.INFO if args.verbose else os.environ.get("DOCMIND_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:  # bare `docmind` launches the app
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "app"])
    handler = args.handler
    from docmind.storage import StorageError

    try:
        return handler(args)
    except (CommandError, StorageError, OSError) as error:
        print(f"docmind: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("docmind: interrupted", file=sys.stderr)
        return 130
