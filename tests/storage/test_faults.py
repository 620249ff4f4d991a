"""Faults on real files and processes: read-only data dir, full disk, kill -9 inside a transaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from llama_index.core.schema import TextNode

from docmind.storage import Database, DiskFullError, SQLiteKVStore, SQLiteVectorStore
from tests.storage.helpers import AS_UNPRIVILEGED, REPO, integrity


def _try_unprivileged(db_path: Path) -> dict:
    script = AS_UNPRIVILEGED + textwrap.dedent(
        """
        import json, sys
        from docmind.storage import SQLiteKVStore, StorageError
        try:
            SQLiteKVStore(sys.argv[1]).put("new", {"x": 1})
            print(json.dumps({"error": None}))
        except StorageError as error:
            print(json.dumps({"error": type(error).__name__, "message": str(error)}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(db_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
@pytest.mark.parametrize("case", ["new database", "existing database", "missing data dir"])
def test_read_only_data_dir_is_a_clear_error(data_dir, case):
    db_path = data_dir / "docmind.db"
    if case == "existing database":
        kv = SQLiteKVStore(Database(db_path))
        kv.put("old", {"x": 0})
        kv.database.close()
        db_path.chmod(0o444)
    locked = data_dir
    if case == "missing data dir":
        db_path = data_dir / "sub" / "docmind.db"
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    locked.chmod(0o555)
    try:
        result = _try_unprivileged(db_path)
    finally:
        locked.chmod(0o755)
        if db_path.exists():
            db_path.chmod(0o644)
    assert result["error"] == "ReadOnlyError"
    assert str(db_path.parent) in result["message"]
    assert "--data-dir" in result["message"] or "Cannot create the data dir" in result["message"]
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


def test_full_disk_fails_cleanly_and_keeps_earlier_data(db_path):
    db = Database(db_path)
    kv, vectors = SQLiteKVStore(db), SQLiteVectorStore(db)
    kv.put_all([(f"k{i}", {"i": i}) for i in range(100)])
    vectors.add([TextNode(id_=f"n{i}", text=f"kept chunk {i}", embedding=[1.0, float(i)]) for i in range(10)])
    pages = db.read("PRAGMA page_count")[0][0]
    db.connection().execute(f"PRAGMA max_page_count = {pages + 2}")  # this connection's disk is now "full"

    with pytest.raises(DiskFullError, match="full; nothing was written"):
        kv.put_all([(f"big{i}", {"blob": "x" * 2000}) for i in range(500)])
    with pytest.raises(DiskFullError):
        vectors.add([TextNode(id_=f"big{i}", text="y " * 2000, embedding=[0.0, 1.0]) for i in range(200)])

    assert kv.get_all() == {f"k{i}": {"i": i} for i in range(100)}
    assert sorted(n.node_id for n in vectors.get_nodes()) == sorted(f"n{i}" for i in range(10))
    assert vectors.text_search("kept", top_k=20).ids and len(vectors.text_search("kept", top_k=20).ids) == 10
    assert integrity(db_path) == ("ok", "ok")

    db.connection().execute("PRAGMA max_page_count = 1073741823")  # space freed: the same connection works again
    kv.put("after", {"ok": True})
    assert kv.get("after") == {"ok": True}


def test_kill_9_inside_a_transaction(db_path, tmp_path):
    kv = SQLiteKVStore(Database(db_path))
    kv.put_all([(f"before{i}", {"i": i}) for i in range(50)], collection="writers")
    log = tmp_path / "big.log"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.writer", str(db_path), "victim", "big", str(log)],
        cwd=REPO, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (log.exists() and b"inside" in log.read_bytes()):
        assert writer.poll() is None, writer.stderr.read().decode()
        assert time.monotonic() < deadline, "the writer never started its transaction"
        time.sleep(0.01)
    time.sleep(0.3)  # let it write into the WAL
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)

    quick = Database(db_path, busy_timeout_ms=100)  # a stale lock would make this write fail
    started = time.monotonic()
    SQLiteKVStore(quick).put("after", {"ok": True}, collection="writers")
    assert time.monotonic() - started < 2
    assert set(SQLiteKVStore(quick).get_all("writers")) == {f"before{i}" for i in range(50)} | {"after"}
    assert integrity(db_path) == ("ok", "ok")
