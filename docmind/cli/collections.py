"""``docmind collections list|create|rename|delete|add|remove``: named sets of documents a chat can search."""

from __future__ import annotations

import argparse
from typing import Any

from docmind.cli.common import CommandError, Handler, add_command, add_group, current_database, emit, one_line_errors

collection_errors = one_line_errors("docmind.cache.collections:CollectionError")


def _size(c: dict[str, Any]) -> str:
    return f"{c['name']}: {c['documents']} documents, {c['chunks']} passages"


def cmd_list(args: argparse.Namespace) -> int:
    from docmind.cache.collections import list_collections

    rows = [c.to_json() for c in list_collections(current_database())]
    emit(rows, args.json, lambda rs: "\n".join(_size(r) for r in rs)
         or "No collections yet. Make one with `docmind collections create NAME`.")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from docmind.cache.collections import create_collection

    emit(create_collection(current_database(), args.name).to_json(), args.json, lambda c: f"Created {c['name']}.")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from docmind.cache.collections import rename_collection

    renamed = rename_collection(current_database(), args.name, args.new_name)
    emit(renamed.to_json(), args.json, lambda c: f"Renamed {args.name} to {c['name']}.")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from docmind.cache.collections import delete_collection

    deleted = delete_collection(current_database(), args.name)
    emit({"deleted": deleted.name}, args.json,
         lambda r: f"Deleted the collection {r['deleted']}; its documents stay in the library.")
    return 0


def _membership(args: argparse.Namespace, change: Any, verb: str) -> int:
    result = change(current_database(), args.name, args.paths)
    if result.not_found and len(result.not_found) == len(args.paths):
        raise CommandError(f"none of the paths is in the library ({', '.join(result.not_found)}); "
                           "`docmind docs list` shows what is")
    data = {"collection": result.collection, verb: result.changed, "not_found": result.not_found}
    emit(data, args.json, lambda r: "\n".join(
        [f"{verb.capitalize()} {source}" for source in r[verb]]
        + [f"not in the library: {path}" for path in r["not_found"]]) or "Nothing changed.")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from docmind.cache.collections import add_to_collection

    return _membership(args, add_to_collection, "added")


def cmd_remove(args: argparse.Namespace) -> int:
    from docmind.cache.collections import remove_from_collection

    return _membership(args, remove_from_collection, "removed")


def add_collections_commands(sub: Any) -> None:
    def command(parent: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        return add_command(parent, name, collection_errors(handler), help)

    actions = add_group(sub, "collections", "named sets of documents that a chat can search", "action")
    command(actions, "list", cmd_list, "list the collections with their sizes")
    command(actions, "create", cmd_create, "make a new, empty collection").add_argument("name", metavar="NAME")
    rename = command(actions, "rename", cmd_rename, "rename a collection")
    rename.add_argument("name", metavar="NAME")
    rename.add_argument("new_name", metavar="NEW")
    command(actions, "delete", cmd_delete, "delete a collection (its documents stay in the library)").add_argument(
        "name", metavar="NAME")
    for name, handler, help in (("add", cmd_add, "add documents (or every document under a folder)"),
                                ("remove", cmd_remove, "take documents out of a collection (they stay in the library)")):
        parser = command(actions, name, handler, help)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("paths", nargs="+", metavar="PATH")
