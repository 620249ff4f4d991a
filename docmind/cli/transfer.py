"""``docmind export FILE`` and ``docmind import FILE``: everything, in one file, to another data dir."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from docmind.cli.common import add_command, current_database, current_settings, emit, one_line_errors

transfer_errors = one_line_errors("docmind.cache.transfer:TransferError")


@transfer_errors
def cmd_export(args: argparse.Namespace) -> int:
    from docmind.cache.transfer import export_everything

    report = export_everything(current_database(), current_settings().data_dir, args.file)
    emit(report.to_json(), args.json, lambda r: (
        f"Wrote {r['file']} ({r['bytes'] / 1048576:.1f} MB): {r['documents']} documents, {r['chunks']} passages, "
        f"{r['sessions']} chats with {r['messages']} messages."))
    return 0


@transfer_errors
def cmd_import(args: argparse.Namespace) -> int:
    from docmind.cache.transfer import import_everything

    report = import_everything(current_database(), current_settings().data_dir, Path(args.file))
    emit(report.to_json(), args.json, lambda r: (
        f"Added {r['documents_added']} documents ({r['documents_skipped']} were already here) and "
        f"{r['sessions_added']} chats ({r['sessions_renamed']} got a new id because theirs was taken)."))
    return 0


def add_transfer_commands(sub: Any) -> None:
    export = add_command(sub, "export", cmd_export,
                         "write everything (library, collections, watched folders, chats) to one file")
    export.add_argument("file", metavar="FILE")
    imported = add_command(sub, "import", cmd_import,
                           "add everything from an export file (exact into an empty data dir, else a merge)")
    imported.add_argument("file", metavar="FILE")
