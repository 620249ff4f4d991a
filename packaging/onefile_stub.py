"""The single-file DocMind: unpack the app once into a versioned folder in the user's cache, then run it.

A plain PyInstaller onefile decompresses ~1.3 GB on every start (~5 s or more). This stub is a small
onefile that carries the app folder as a payload (see ``payload.py``); the first start unpacks it into
``<user cache>/DocMind/runtime/<build id>/``, later starts run the app from there directly. Arguments,
stdin/stdout and the exit code pass through, so ``DocMind ask --json ...`` works as usual.
Standard library only, so the stub itself starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from native_dialog import show_error
from payload import Payload, PayloadError, read_payload

APP_NAME = "DocMind"
COMPLETE_MARKER = ".complete"
_UNPACKING_PREFIX = ".unpacking-"
_STALE_UNPACK_S = 3600
UNPACK_LOCK = ".unpack.lock"
IN_USE = ".in-use"
_HELD: dict[Path, BinaryIO] = {}  # this process's in-use lock file per build, open until it exits


class UnpackError(Exception):
    """The app could not be unpacked into the cache (no space, no permission)."""


def runtime_root() -> Path:
    """Where unpacked builds live: ``DOCMIND_RUNTIME_DIR``, else ``<user cache>/DocMind/runtime``."""
    if override := os.environ.get("DOCMIND_RUNTIME_DIR"):
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / APP_NAME / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / APP_NAME
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP_NAME
    return base / "runtime"


class _Slice(io.RawIOBase):
    """Read ``length`` bytes of ``file`` from its current position, then end."""

    def __init__(self, file: io.BufferedReader, length: int) -> None:
        self._file, self._left = file, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._file.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def _lock(file: BinaryIO, wait: bool) -> bool:
    """Lock ``file`` for this process (released when its last descriptor closes or the process dies).

    With ``wait`` it blocks until the lock is free; without, it returns False when another process holds it."""
    file.seek(0)
    if sys.platform == "win32":
        import msvcrt

        while True:
            try:
                msvcrt.locking(file.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)  # LK_LOCK retries ~10 s
                return True
            except OSError:
                if not wait:
                    return False
    import fcntl

    try:
        fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def unpack_lock(root: Path) -> Iterator[None]:
    """Held while unpacking or removing builds, so a second double-click waits instead of repeating the work.

    The operating system drops the lock when its process dies, so a killed first start never blocks."""
    try:
        file = open(root / UNPACK_LOCK, "a+b")
    except OSError as error:
        raise UnpackError(f"cannot write in {root} ({error.strerror}). Set DOCMIND_RUNTIME_DIR to a writable folder.")
    with file:
        _lock(file, wait=True)
        yield  # closing the file releases the lock


def hold_build(build: Path) -> None:
    """Mark ``build`` as in use by this process until it exits, so no newer version's start deletes it.

    Each running instance locks its own file in ``<build>/.in-use/``. On POSIX the descriptor survives
    ``execve``, so the app that replaces this stub keeps holding it; on Windows this stub waits for the app."""
    if build in _HELD:
        return
    folder = build / IN_USE
    folder.mkdir(exist_ok=True)
    file = open(folder / str(os.getpid()), "a+b")
    _lock(file, wait=True)  # our own fresh file: free at once
    if sys.platform != "win32":
        os.set_inheritable(file.fileno(), True)
    _HELD[build] = file


def in_use(build: Path) -> bool:
    """True while another running DocMind holds ``build``; lock files of exited instances are removed on the way."""
    folder = build / IN_USE
    if not folder.is_dir():
        return False
    for marker in folder.iterdir():
        if marker.name != str(os.getpid()):  # this process is about to run another build: not a user of this one
            with open(marker, "a+b") as file:
                if not _lock(file, wait=False):
                    return True
        marker.unlink(missing_ok=True)  # its process has exited
    return False


def ensure_unpacked(executable: Path, payload: Payload, root: Path) -> Path:
    """The folder holding this build's app, unpacked first if no complete copy exists, held by this process.

    Older builds that no running DocMind holds are removed on the way."""
    target = root / payload.build_id
    try:
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
    except OSError as error:
        raise UnpackError(f"cannot create {root} ({error.strerror}). Set DOCMIND_RUNTIME_DIR to a writable folder.")
    with unpack_lock(root):  # one start at a time checks, unpacks, holds and removes builds
        if not (target / COMPLETE_MARKER).is_file():
            _unpack(executable, payload, root, target, free)
        hold_build(target)
        _remove_other_builds(root, keep=target)
    return target


def _unpack(executable: Path, payload: Payload, root: Path, target: Path, free: int) -> None:
    if free < payload.unpacked_size * 1.05:
        raise UnpackError(
            f"DocMind needs {payload.unpacked_size / 1e9:.1f} GB free in {root} to unpack itself the first "
            f"time, but only {free / 1e9:.1f} GB is free. Free some disk space and start DocMind again."
        )
    started = time.monotonic()
    print(f"DocMind: first start of this version, unpacking into {target} ...", file=sys.stderr, flush=True)
    shutil.rmtree(target, ignore_errors=True)  # an incomplete copy (its removal was interrupted)
    staging = Path(tempfile.mkdtemp(prefix=_UNPACKING_PREFIX, dir=root))
    try:
        with open(executable, "rb") as file:
            file.seek(payload.offset)
            stream = io.BufferedReader(_Slice(file, payload.length), 1 << 20)
            with tarfile.open(fileobj=stream, mode="r|gz") as archive:
                archive.extractall(staging, filter="data")
        (staging / COMPLETE_MARKER).write_text(payload.build_id)
        os.replace(staging, target)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise UnpackError(f"this DocMind file is damaged ({error}): download it again.")
    except OSError as error:
        if not (target / COMPLETE_MARKER).is_file():  # else another first start just finished it: use theirs
            raise UnpackError(f"could not unpack DocMind into {root}: {error}. Check free space and permissions.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"DocMind: unpacked in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)


def _remove_other_builds(root: Path, keep: Path) -> None:
    """Delete older unpacked builds that no running DocMind holds, and abandoned half-unpacked folders."""
    for entry in filter(Path.is_dir, root.iterdir()):
        try:
            abandoned = time.time() - entry.stat().st_mtime > _STALE_UNPACK_S
            if entry == keep or (entry.name.startswith(_UNPACKING_PREFIX) and not abandoned) or in_use(entry):
                continue
            (entry / COMPLETE_MARKER).unlink(missing_ok=True)  # a half-deleted copy must not look complete
            shutil.rmtree(entry, ignore_errors=True)
        except OSError as error:  # removed meanwhile, or not ours to delete: leave it for next time
            print(f"DocMind: could not remove {entry}: {error}", file=sys.stderr)


def child_environment() -> dict[str, str]:
    """This process's environment, minus what our bootloader set, so the app's own bootloader starts clean."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_PYI_") and k != "_MEIPASS2"}
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH"):
        original = env.pop(f"{name}_ORIG", None)
        if original is not None:
            env[name] = original
        else:
            env.pop(name, None)
    return env


def main(executable: Path | None = None) -> int:
    """Unpack (once) and run the app of ``executable`` (this single file), passing arguments through."""
    executable = executable or Path(sys.executable)
    try:
        app_dir = ensure_unpacked(executable, read_payload(executable), runtime_root())
    except (PayloadError, UnpackError) as error:
        show_error(str(error))
        return 1
    app = app_dir / (f"{APP_NAME}.exe" if sys.platform == "win32" else APP_NAME)
    argv = [str(app), *sys.argv[1:]]
    try:
        if sys.platform == "win32":
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the app too: let it close cleanly
            return subprocess.call(argv, env=child_environment())
        os.execve(app, argv, child_environment())  # replaces this process; returns only by raising
    except OSError as error:
        show_error(f"could not start {app}: {error}. Delete {app_dir} and start DocMind again.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
