"""The library: ``ingest``, ``search`` and ``docs list|remove``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from docmind.cli.common import (
    CommandError,
    Handler,
    add_command,
    add_group,
    current_database,
    current_settings,
    emit,
    one_line_errors,
)

library_errors = one_line_errors("docmind.cache:DocumentNotFoundError", "docmind.cache:EmbeddingModelError")
"""A missing embedding model or an unknown document is reported as one line (exit 1)."""


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

    ingestor = Ingestor(current_settings(), current_database())
    with tqdm(unit="file", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:

        def progress(event: Any) -> None:
            bar.total = event.files_total
            bar.n = event.files_done
            name = Path(event.current_file).name if event.current_file else ""
            if event.pages_total > 1:  # a file of many pages: where it stands, page by page
                eta = "" if event.eta_seconds is None else f" ETA {tqdm.format_interval(event.eta_seconds)}"
                name = f"page {event.pages_done}/{event.pages_total}{eta} {name}"
            bar.set_postfix_str(f"{event.chunks} chunks {name}"[:80], refresh=False)
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
    searcher = Searcher(current_settings(), current_database())
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

    rows = [info.to_json() for info in list_documents(current_database())]
    emit(rows, args.json, lambda rs: "\n".join(
        f"{r['chunks']:>6} chunks  {r['ingested_at'][:16].replace('T', ' ')}  {r['source']}" for r in rs)
        or "No documents yet. Add some with `docmind ingest PATH`.")
    return 0


def cmd_docs_remove(args: argparse.Namespace) -> int:
    from docmind.cache import library_dir, remove_documents

    removed = remove_documents(current_database(), args.path, library_dir(current_settings().data_dir))
    emit({"removed": removed}, args.json, lambda r: "\n".join(f"Removed {source}" for source in r["removed"]))
    return 0


def add_library_commands(sub: Any) -> None:
    def command(parent: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        return add_command(parent, name, library_errors(handler), help)

    ingest = command(sub, "ingest", cmd_ingest, "add files and folders to the library (unchanged files are skipped)")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    search = command(sub, "search", cmd_search, "find the passages that best match each query (no model needed)")
    search.add_argument("query", nargs="*", metavar="QUERY", help="one or more queries (quote a query with spaces)")
    search.add_argument("--queries", metavar="FILE", help="read queries from FILE, one per line")
    search.add_argument("-k", type=int, default=5, help="passages per query (default 5)")
    actions = add_group(sub, "docs", "list or remove documents in the library", "action")
    command(actions, "list", cmd_docs_list, "list the documents in the library")
    remove = command(actions, "remove", cmd_docs_remove, "remove a document, or every document under a folder")
    remove.add_argument("path", metavar="PATH")
