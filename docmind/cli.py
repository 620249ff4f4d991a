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
    backup = command("backup", cmd_backup, "copy the database while DocMind runs", json_flag=False)
    backup.add_argument("dest", help="file or folder to write the backup to")
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
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    from docmind.storage import StorageError

    try:
        return handler(args)
    except (CommandError, StorageError, OSError) as error:
        print(f"docmind: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("docmind: interrupted", file=sys.stderr)
        return 130
