"""``docmind watch list|add|remove``: folders the running app keeps in sync with the library."""

from __future__ import annotations

import argparse
from typing import Any

from docmind.cli.common import Handler, add_command, add_group, current_database, emit, one_line_errors

watch_errors = one_line_errors("docmind.cache.watch:WatchError", "docmind.cache.collections:CollectionError")


def _line(folder: dict[str, Any]) -> str:
    tie = f" → collection {folder['collection']}" if folder["collection"] else ""
    error = f" (last problem: {folder['last_error']})" if folder["last_error"] else ""
    return f"{folder['path']}{tie}: {folder['state']}, {folder['files']} documents{error}"


def cmd_list(args: argparse.Namespace) -> int:
    from docmind.cache.watch import list_watched_folders

    rows = [folder.to_json() for folder in list_watched_folders(current_database())]
    emit(rows, args.json, lambda rs: "\n".join(_line(r) for r in rs)
         or "No watched folders. Add one with `docmind watch add PATH`.")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from docmind.cache.watch import add_watched_folder

    folder = add_watched_folder(current_database(), args.path, args.collection)
    emit(folder.to_json(), args.json, lambda r: f"Watching {r['path']}: while DocMind is open it adds the folder's "
                                                "files and follows their changes.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from docmind.cache.watch import remove_watched_folder

    folder = remove_watched_folder(current_database(), args.path)
    emit(folder.to_json(), args.json, lambda r: f"Stopped watching {r['path']}; its documents stay in the library.")
    return 0


def add_watch_commands(sub: Any) -> None:
    def command(parent: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        return add_command(parent, name, watch_errors(handler), help)

    actions = add_group(sub, "watch", "folders the running app keeps in sync with the library", "action")
    command(actions, "list", cmd_list, "list the watched folders with their state")
    add = command(actions, "add", cmd_add, "watch a folder: its files join the library and follow their changes")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--collection", metavar="NAME", help="also put the folder's documents in this collection")
    command(actions, "remove", cmd_remove, "stop watching a folder (its documents stay)").add_argument(
        "path", metavar="PATH")
