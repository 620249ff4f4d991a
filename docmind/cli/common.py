"""What every command shares: one-line errors, JSON or text output, settings and the database."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A failure to report to the user as one line on stderr (exit code 1)."""


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON or through ``text`` for people."""
    if as_json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text(data))


def one_line_errors(*error_names: str) -> Callable[[Handler], Handler]:
    """Report the named exceptions (``"module:Class"``, imported only when the command runs, so
    ``--version`` stays fast) as one line on stderr with exit code 1."""

    def decorate(handler: Handler) -> Handler:
        def run(args: argparse.Namespace) -> int:
            errors = tuple(getattr(importlib.import_module(module), name)
                           for module, name in (error.split(":") for error in error_names))
            try:
                return handler(args)
            except errors as error:
                raise CommandError(str(error)) from error

        return run

    return decorate


def add_command(parent: Any, name: str, handler: Handler, help: str, *, json_flag: bool = True,
                description: str | None = None) -> argparse.ArgumentParser:
    """A command ``name`` that runs ``handler``; ``help`` is its description too unless one is given."""
    parser = parent.add_parser(name, help=help, description=description or help)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=handler)
    return parser


def add_group(parent: Any, name: str, help: str, dest: str) -> Any:
    """A command made of actions (``docmind sessions list``); add the actions to what this returns."""
    parser = parent.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)


def current_settings():
    from docmind.config import load_settings

    return load_settings()


def current_database():
    from docmind.storage import open_database

    return open_database(current_settings().db_path)
