"""``docmind users list|add|remove|passwd``: the accounts that may log in when DocMind serves a network.

A password is read from stdin when stdin is not a terminal (one line), else asked for twice without echo.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from docmind.cli.common import CommandError, add_command, add_group, current_database, emit, one_line_errors

user_errors = one_line_errors("docmind.storage.users:UserError")


def _users():
    from docmind.storage.users import Users

    return Users(current_database())


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise CommandError("The two passwords differ; nothing was changed.")
    return first


@user_errors
def cmd_users_list(args: argparse.Namespace) -> int:
    rows = [{"name": u.name, "created_at": u.created_at} for u in _users().list()]
    emit(rows, args.json, lambda rs: "\n".join(f"{r['name']}  (added {r['created_at'][:10]})" for r in rs)
         or "No users: DocMind serves only this computer. Add one with `docmind users add NAME`.")
    return 0


@user_errors
def cmd_users_add(args: argparse.Namespace) -> int:
    user = _users().add(args.name, _read_password())
    emit({"name": user.name, "created_at": user.created_at}, args.json, lambda r: f"Added user {r['name']}.")
    return 0


@user_errors
def cmd_users_remove(args: argparse.Namespace) -> int:
    _users().remove(args.name)
    emit({"name": args.name, "removed": True}, args.json, lambda r: f"Removed user {r['name']}; their chats are kept.")
    return 0


@user_errors
def cmd_users_passwd(args: argparse.Namespace) -> int:
    _users().set_password(args.name, _read_password())
    emit({"name": args.name, "changed": True}, args.json, lambda r: f"Changed the password of {r['name']}.")
    return 0


def add_users_commands(sub: argparse._SubParsersAction) -> None:
    actions = add_group(sub, "users", "accounts that may log in when DocMind serves a network", "users_action")
    add_command(actions, "list", cmd_users_list, "list the users")
    for name, handler, help_text in (("add", cmd_users_add, "add a user (password from stdin or a prompt)"),
                                     ("remove", cmd_users_remove, "remove a user (their chats are kept)"),
                                     ("passwd", cmd_users_passwd, "change a user's password")):
        add_command(actions, name, handler, help_text).add_argument("name", help="the user name")
