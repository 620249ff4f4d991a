"""``docmind sessions ...``: list, show, rename, delete, export, import and search chats."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from docmind.cli.common import (
    Handler,
    add_command,
    add_group,
    current_database,
    emit,
    one_line_errors,
)


def _sessions():
    from docmind.agent.sessions import Sessions

    return Sessions(current_database())


session_errors = one_line_errors("docmind.agent.sessions:UnknownSessionError",
                                 "docmind.agent.sessions:InvalidExportError", "docmind.agent.turns:SessionBusyError")
"""Unknown ids, bad exports and busy sessions are reported as one line (exit 1)."""


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


def add_sessions_commands(sub: Any) -> None:
    actions = add_group(sub, "sessions", "list, show, rename, delete, export, import and search chats", "action")

    def action(name: str, handler: Handler, help: str, json_flag: bool = True) -> argparse.ArgumentParser:
        return add_command(actions, name, session_errors(handler), help, json_flag=json_flag)

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
