"""User accounts on a real SQLite file, and sessions owned by them; ``docmind users`` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from docmind.agent.sessions import Sessions, UnknownSessionError
from docmind.storage.sessions import StoredMessage
from docmind.storage.users import UserError, Users

ROOT = Path(__file__).resolve().parents[2]


def test_passwords_are_stored_as_argon2_hashes_and_verified(db_path):
    users = Users(db_path)
    users.add("alice", "correct horse")
    stored = users.db.read("SELECT password_hash FROM users WHERE name = 'alice'")[0][0]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert users.verify("alice", "correct horse")
    assert not users.verify("alice", "wrong horse")
    assert not users.verify("nobody", "correct horse")
    users.set_password("alice", "battery staple")
    assert users.verify("alice", "battery staple") and not users.verify("alice", "correct horse")


def test_bad_names_passwords_and_unknown_users_are_refused_clearly(db_path):
    users = Users(db_path)
    with pytest.raises(UserError, match="too short"):
        users.add("alice", "short")
    with pytest.raises(UserError, match="cannot be a user name"):
        users.add("../alice", "long enough")
    users.add("alice", "long enough")
    with pytest.raises(UserError, match="already exists"):
        users.add("alice", "another one")
    with pytest.raises(UserError, match="no user named 'bob'"):
        users.remove("bob")
    assert [u.name for u in users.list()] == ["alice"]


def test_a_scoped_view_hides_other_users_sessions(db_path):
    every = Sessions(db_path)
    alice, bob = every.for_owner("alice"), every.for_owner("bob")
    mine = alice.create("alice's chat")
    theirs = bob.create("bob's chat")
    assert [s.id for s in alice.list()] == [mine.id]
    assert {s.id for s in every.list()} == {mine.id, theirs.id}, "the desktop app and the CLI see all"
    for action in (lambda: bob.get(mine.id), lambda: bob.rename(mine.id, "taken"), lambda: bob.delete(mine.id),
                   lambda: bob.messages(mine.id), lambda: bob.export_json(mine.id)):
        with pytest.raises(UnknownSessionError):
            action()
    assert alice.get(mine.id).title == "alice's chat"
    for session in (mine, theirs):
        every.log.append(session.id, StoredMessage(role="user", content="where is the quarterly budget?"))
    assert {h.session for h in every.search("budget")} == {mine.id, theirs.id}
    assert [h.session for h in alice.search("budget")] == [mine.id]


def test_users_cli_reads_the_password_from_stdin(data_dir):
    def docmind(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, "-m", "docmind", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=120)

    added = docmind("users", "add", "alice", "--json", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["name"] == "alice"
    assert docmind("users", "passwd", "alice", stdin="another long one\n").returncode == 0
    assert Users(data_dir / "docmind.db").verify("alice", "another long one")
    short = docmind("users", "add", "bob", stdin="short\n")
    assert short.returncode == 1 and short.stderr.strip().startswith("docmind: error: The password is too short")
    assert [u["name"] for u in json.loads(docmind("users", "list", "--json").stdout)] == ["alice"]
    assert docmind("users", "remove", "alice").returncode == 0
    assert json.loads(docmind("users", "list", "--json").stdout) == []
