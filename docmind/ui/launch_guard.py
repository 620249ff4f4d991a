"""One DocMind app per data dir, a port that is free, and a log file in the data dir.

A running app holds an OS file lock (``filelock``) on ``<data dir>/app.lock`` and writes its address to
``<data dir>/app-instance.json``. A second launch finds the lock held and opens the browser on the
running app instead of starting another server. The OS drops the lock when a process dies, even by
``kill -9``, so a killed app leaves no stale lock: the next launch takes it over and rewrites the address.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

LOCK_FILE = "app.lock"
INSTANCE_FILE = "app-instance.json"
LOG_FILE = Path("logs") / "docmind.log"


class DataDirNotWritableError(OSError):
    """DocMind cannot create or write its data dir."""

    def __init__(self, data_dir: Path, reason: str) -> None:
        super().__init__(
            f"DocMind cannot write to its data folder {data_dir} ({reason}). Fix the folder's permissions, "
            "or choose another folder with --data-dir or the DOCMIND_DATA_DIR environment variable."
        )


@dataclass(frozen=True)
class RunningInstance:
    """The app that holds the lock: where it serves and its process id."""

    url: str
    pid: int


def check_writable(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and prove a file can be written there, or raise a clear error."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as error:
        raise DataDirNotWritableError(data_dir, error.strerror or type(error).__name__) from error


class AppInstanceLock:
    """The single-instance lock of the app on one data dir. Use ``acquire`` then ``with lock:``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = FileLock(data_dir / LOCK_FILE, thread_local=False)
        self._instance_file = data_dir / INSTANCE_FILE

    def acquire(self) -> bool:
        """Take the lock: True if this process is now the app, False if another app holds it."""
        check_writable(self.data_dir)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self._instance_file.unlink(missing_ok=True)  # left by a killed app; ours is published once serving
        return True

    def publish(self, url: str) -> None:
        """Record where this app serves, for the next launch to find."""
        staging = self._instance_file.with_suffix(".tmp")
        staging.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
        os.replace(staging, self._instance_file)

    def release(self) -> None:
        """Forget the address and drop the lock (also done by the OS if the process dies)."""
        if self._lock.is_locked:
            self._instance_file.unlink(missing_ok=True)
            self._lock.release(force=True)

    def __enter__(self) -> AppInstanceLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def running_instance(self, wait_s: float = 60.0) -> RunningInstance | None:
        """The app that holds the lock, waiting up to ``wait_s`` for it to finish starting; None if it never
        publishes an address (or the lock is free again)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                record = json.loads(self._instance_file.read_text(encoding="utf-8"))
                return RunningInstance(url=record["url"], pid=int(record["pid"]))
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() >= deadline or not self._held_elsewhere():
                return None
            time.sleep(0.2)

    def _held_elsewhere(self) -> bool:
        probe = FileLock(self._lock.lock_file, thread_local=False, is_singleton=False)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return True
        probe.release()
        return False


def available_port(host: str, preferred: int) -> int:
    """``preferred`` if it is free on ``host``, else another free port (0 means any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(family) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                log.warning("Port %d on %s is in use; DocMind takes another free port.", port, host)
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free port on {host}: close some programs and start DocMind again")


def log_to_file(data_dir: Path) -> Path:
    """Also write DocMind's log (INFO and up) to ``<data dir>/logs/docmind.log``, rotated at 5 MB."""
    path = data_dir / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    for existing in root.handlers:  # keep the terminal as quiet as it was
        if existing.level == logging.NOTSET:
            existing.setLevel(root.level)
    root.addHandler(handler)
    docmind_log = logging.getLogger("docmind")
    docmind_log.setLevel(min(logging.INFO, docmind_log.getEffectiveLevel()))
    return path
