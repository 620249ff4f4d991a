"""Single instance, free port, log file and data-dir errors of the app launch, with real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from docmind.ui.launch_guard import AppInstanceLock, DataDirNotWritableError, available_port
from tests.packaging.conftest import start_app

ROOT = Path(__file__).resolve().parents[2]

# Holds the app lock of a data dir in another process, publishes an address after a delay, then waits.
HOLDER = """
import sys, time
from pathlib import Path
from docmind.ui.launch_guard import AppInstanceLock
lock = AppInstanceLock(Path(sys.argv[1]))
assert lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[3]))
if sys.argv[2]:
    lock.publish(sys.argv[2])
print("published", flush=True)
time.sleep(600)
"""


def _hold_lock(data_dir: Path, url: str = "", publish_after_s: float = 0.0) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), url, str(publish_after_s)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_second_launch_is_refused_and_finds_the_running_app(data_dir: Path) -> None:
    holder = _hold_lock(data_dir, "http://127.0.0.1:4321/")
    try:
        assert holder.stdout.readline().strip() == "published"
        second = AppInstanceLock(data_dir)
        assert second.acquire() is False
        running = second.running_instance(wait_s=5)
        assert running is not None
        assert (running.url, running.pid) == ("http://127.0.0.1:4321/", holder.pid)
    finally:
        _kill(holder)


def test_a_second_launch_waits_for_the_first_to_finish_starting(data_dir: Path) -> None:
    holder = _hold_lock(data_dir, "http://127.0.0.1:4322/", publish_after_s=1.5)
    try:
        second = AppInstanceLock(data_dir)
        assert second.acquire() is False
        running = second.running_instance(wait_s=30)
        assert running is not None and running.url == "http://127.0.0.1:4322/"
    finally:
        _kill(holder)


def test_an_app_that_never_publishes_is_reported_as_none(data_dir: Path) -> None:
    holder = _hold_lock(data_dir)
    try:
        assert AppInstanceLock(data_dir).running_instance(wait_s=0.5) is None
    finally:
        _kill(holder)


def test_the_lock_of_a_killed_app_is_recovered(data_dir: Path) -> None:
    holder = _hold_lock(data_dir, "http://127.0.0.1:4323/")
    assert holder.stdout.readline().strip() == "published"
    _kill(holder)
    assert (data_dir / "app.lock").exists() and (data_dir / "app-instance.json").exists()  # left behind
    with AppInstanceLock(data_dir) as lock:
        assert lock.acquire() is True
        assert not (data_dir / "app-instance.json").exists()  # the dead app's address is forgotten
        lock.publish("http://127.0.0.1:4324/")
        other = AppInstanceLock(data_dir)
        assert other.acquire() is False
        assert other.running_instance(wait_s=1).url == "http://127.0.0.1:4324/"
    with AppInstanceLock(data_dir) as again:
        assert again.acquire() is True  # released on exit


def test_a_busy_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        port = available_port("127.0.0.1", taken)
        assert port != taken
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # really free
    assert available_port("127.0.0.1", taken) == taken  # free again: the user's choice is kept


def test_a_data_dir_that_cannot_be_written_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(DataDirNotWritableError, match="cannot write to its data folder .*--data-dir"):
        AppInstanceLock(blocker / "data").acquire()


def test_serve_with_an_unwritable_data_dir_exits_with_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    if os.geteuid() == 0:
        data_dir = blocker / "data"  # root ignores permissions: a file in the way cannot be bypassed
    else:
        data_dir = tmp_path / "read-only"
        data_dir.mkdir(mode=0o555)
    result = subprocess.run(
        [sys.executable, "-m", "docmind", "--data-dir", str(data_dir), "serve", "--no-browser"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to its data folder" in lines[0], result.stderr


def test_serve_takes_a_free_port_keeps_one_instance_and_recovers_after_kill(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "DOCMIND_MODEL_PATH": str(tiny_model_dir)}
    command = [sys.executable, "-m", "docmind", "serve", "--no-browser"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        first = start_app([*command, "--port", str(taken)], env, tmp_path / "first.log")
    try:
        assert f":{taken}/" not in first.url
        assert urllib.request.urlopen(first.url, timeout=30).status == 200

        second = start_app(command, env, tmp_path / "second.log", timeout=60)
        assert second.process.wait(timeout=30) == 0  # it did not start a server of its own
        assert f"already running at {first.url}" in second.output()
        log_file = data_dir / "logs" / "docmind.log"
        assert f"running at {first.url}" in log_file.read_text()
    finally:
        _kill(first.process)

    third = start_app(command, env, tmp_path / "third.log")  # the killed app's lock is recovered
    try:
        assert "already running" not in third.output()
        assert urllib.request.urlopen(third.url, timeout=30).status == 200
    finally:
        third.stop()
