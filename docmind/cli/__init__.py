"""The ``docmind`` command line. It drives the same core as the app.

Heavy libraries (torch, transformers, gradio) are imported only inside the commands that need them.
``--json`` prints one JSON document on stdout; progress and logs go to stderr.
Exit codes: 0 ok, 1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from docmind import __version__
from docmind.cli.app import add_app_commands
from docmind.cli.ask import add_ask_command
from docmind.cli.collections import add_collections_commands
from docmind.cli.common import CommandError
from docmind.cli.library import add_library_commands
from docmind.cli.model import add_model_commands
from docmind.cli.quiet import quiet_third_party_libraries
from docmind.cli.sessions import add_sessions_commands
from docmind.cli.transfer import add_transfer_commands
from docmind.cli.watch import add_watch_commands
from docmind.cli.users import add_users_commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docmind", description="Chat with your documents, offline.")
    parser.add_argument("--version", action="version", version=f"DocMind {__version__}")
    parser.add_argument("--data-dir", help="where DocMind keeps its data (env DOCMIND_DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_app_commands(sub)
    add_sessions_commands(sub)
    add_ask_command(sub)
    add_library_commands(sub)
    add_model_commands(sub)
    add_collections_commands(sub)
    add_transfer_commands(sub)
    add_watch_commands(sub)
    add_users_commands(sub)
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
    if not args.verbose:
        quiet_third_party_libraries()
    if args.command is None:  # bare `docmind` launches the app
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "app"])
    handler = args.handler
    from docmind.config import SettingsError
    from docmind.storage import StorageError

    try:
        return handler(args)
    except (CommandError, SettingsError, StorageError, OSError) as error:
        print(f"docmind: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("docmind: interrupted", file=sys.stderr)
        return 130
