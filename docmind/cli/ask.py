"""``docmind ask``: one turn of a chat, streamed to the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from docmind.cli.common import CommandError, add_command, current_settings, emit, one_line_errors


@one_line_errors("docmind.agent.chat:EmptyQuestionError", "docmind.agent.chat:QuestionTooLongError",
                 "docmind.agent.sessions:UnknownSessionError", "docmind.agent.turns:SessionBusyError",
                 "docmind.cache.collections:CollectionError")
def cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from docmind.agent.chat import ChatService

    service = ChatService(current_settings())
    session_id = args.session
    if session_id is None and not args.new_session:
        recent = service.sessions.list()
        session_id = recent[0].id if recent else None
    scope = [] if args.all_documents else args.collection
    done = asyncio.run(_ask(service, session_id, " ".join(args.question), scope, args.json))
    if args.json:
        emit(done.to_json(), True, str)
        return 0
    print(done.answer)
    if done.citations:
        print("\nSources:")
        for p in done.citations:
            print(f"  [{p.number}] {p.source}" + (f", page {p.page}" if p.page else ""))
    for claim in done.support.unsupported if done.support else []:
        print(f"  ⚠ {claim.note}: {claim.text}")
    print(f"\nsession {done.session_id} · {done.seconds:.1f} s", file=sys.stderr)
    return 0


async def _ask(service: Any, session_id: str | None, question: str, scope: list[str] | None, quiet: bool) -> Any:
    """Run one turn; show thinking and notices on stderr as they stream (unless ``--json``)."""
    from docmind.agent.events import Done, Notice, ThinkingToken, ToolCalled, TurnFailed

    done = None
    async for event in service.chat(session_id, question, scope):
        if isinstance(event, Done):
            done = event
        elif isinstance(event, TurnFailed):
            raise CommandError(f"{event.message} (the question is kept in session {event.session_id})")
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


def add_ask_command(sub: Any) -> None:
    ask = add_command(sub, "ask", cmd_ask, "ask a question about your documents",
                      description="Ask a question about your documents. Continues the most recent session "
                                  "unless --session or --new-session is given.")
    ask.add_argument("question", nargs="+", help="the question")
    which = ask.add_mutually_exclusive_group()
    which.add_argument("--session", help="the session to continue (see `docmind sessions list`)")
    which.add_argument("--new-session", action="store_true", help="start a new session")
    scope = ask.add_mutually_exclusive_group()
    scope.add_argument("--collection", action="append", metavar="NAME",
                       help="search only this collection (repeatable); the session remembers it")
    scope.add_argument("--all-documents", action="store_true", help="search every document again")
