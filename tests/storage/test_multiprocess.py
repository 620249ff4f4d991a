"""Several real processes writing one database at once, one of them killed with -9 midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from docmind.storage import Database
from tests.storage.helpers import REPO, integrity
from tests.storage.writer import COLLECTION, key

WRITERS = 4
TRANSACTIONS = 2000
KILL_AFTER = TRANSACTIONS // 2


def _logged(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _committed(db: Database, name: str) -> set[int]:
    """The transaction numbers of writer ``name`` found in the database (KV puts and chunk upserts)."""
    kv = db.read("SELECT key FROM kv WHERE collection = ? AND key LIKE ?", (COLLECTION, f"{name}-%"))
    chunks = db.read("SELECT node_id FROM chunks WHERE node_id LIKE ?", (f"{name}-%",))
    return {int(row[0].rsplit("-", 1)[1]) for row in [*kv, *chunks]}


def test_four_writers_one_killed(db_path, tmp_path):
    Database(db_path).close()  # migrate once, before the race
    names = [f"w{i}" for i in range(WRITERS)]
    logs = {name: tmp_path / f"{name}.log" for name in names}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.storage.writer", str(db_path), name, str(TRANSACTIONS), str(logs[name])],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name in names
    }
    victim = names[0]
    deadline = time.monotonic() + 180
    while len(_logged(logs[victim])) < KILL_AFTER:
        assert procs[victim].poll() is None, procs[victim].stderr.read()
        assert time.monotonic() < deadline, "the victim writer made no progress"
        time.sleep(0.005)
    os.kill(procs[victim].pid, signal.SIGKILL)

    failures = {}
    for name, proc in procs.items():
        _, stderr = proc.communicate(timeout=300)
        if name != victim and proc.returncode != 0:
            failures[name] = stderr[-2000:]
    assert failures == {}  # no "database is locked" (or anything else) reached a writer
    assert procs[victim].returncode == -signal.SIGKILL

    db = Database(db_path)
    for name in names[1:]:
        assert _logged(logs[name]) == list(range(TRANSACTIONS))
        assert _committed(db, name) == set(range(TRANSACTIONS))
    recorded = _logged(logs[victim])
    assert KILL_AFTER <= len(recorded) < TRANSACTIONS
    in_db = _committed(db, victim)
    # Every recorded commit is there, with no gaps; at most the one commit it had no time to record is extra.
    assert in_db in (set(range(len(recorded))), set(range(len(recorded) + 1)))
    assert db.read("SELECT value FROM counters WHERE name = 'chunks'")[0][0] >= (WRITERS - 1) * TRANSACTIONS // 2
    assert integrity(db_path) == ("ok", "ok")
