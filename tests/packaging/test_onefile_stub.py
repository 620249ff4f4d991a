"""The single file's payload layout and the unpack-once logic of its stub, on real files.

The "stub" here is a stand-in with a real PyInstaller cookie at its end; the built binary itself is
covered by smoke_binary.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

STUB_DIR = Path(__file__).resolve().parents[2] / "packaging"
sys.path.insert(0, str(STUB_DIR))

from onefile_stub import COMPLETE_MARKER, IN_USE, UNPACK_LOCK, UnpackError, child_environment, ensure_unpacked  # noqa: E402
from payload import PYI_COOKIE, PYI_COOKIE_MAGIC, PayloadError, read_payload, splice  # noqa: E402

BOOTLOADER = b"\x7fELF pretend bootloader" * 100
ARCHIVE_BODY = b"pretend PyInstaller archive" * 50


def _fake_stub(path: Path) -> Path:
    """Bootloader bytes, then an archive whose cookie (last bytes) records the archive's length."""
    archive_length = len(ARCHIVE_BODY) + PYI_COOKIE.size
    cookie = PYI_COOKIE.pack(PYI_COOKIE_MAGIC, archive_length, 0, 0, 311, b"libpython3.11.so")
    path.write_bytes(BOOTLOADER + ARCHIVE_BODY + cookie)
    return path


def _app_archive(tmp_path: Path, marker: str, script: str = "") -> tuple[Path, int]:
    app = tmp_path / f"app-{marker}"
    (app / "_internal" / "lib").mkdir(parents=True)
    (app / "DocMind").write_text(f"#!/bin/sh\necho {marker}\n{script}")
    (app / "DocMind").chmod(0o755)
    (app / "_internal" / "lib" / "libreal.so.1").write_bytes(os.urandom(4096))
    (app / "_internal" / "libreal.so").symlink_to("lib/libreal.so.1")
    archive = tmp_path / f"app-{marker}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(app.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(app)), recursive=False)
    return archive, 4096 + 20


def _single_file(tmp_path: Path, build_id: str, script: str = "") -> Path:
    archive, size = _app_archive(tmp_path, build_id, script)
    output = tmp_path / f"DocMind-{build_id}"
    splice(_fake_stub(tmp_path / "stub"), archive, size, build_id, output)
    return output


def test_the_stub_keeps_its_archive_intact_and_the_payload_is_found(tmp_path: Path) -> None:
    single = _single_file(tmp_path, "0.1.0-aaaa")
    data = single.read_bytes()
    assert data.startswith(BOOTLOADER)
    stub_archive = (tmp_path / "stub").read_bytes()[len(BOOTLOADER):]
    assert data.endswith(stub_archive)  # the bootloader finds its archive from the end, unchanged
    payload = read_payload(single)
    assert payload.build_id == "0.1.0-aaaa"
    assert data[payload.offset : payload.offset + 2] == b"\x1f\x8b"  # the gzip payload starts there


def test_a_signature_appended_after_the_archive_is_tolerated(tmp_path: Path) -> None:
    single = _single_file(tmp_path, "0.1.0-aaaa")
    with open(single, "ab") as file:
        file.write(b"\0" * 9000)  # e.g. an Authenticode certificate table
    assert read_payload(single).build_id == "0.1.0-aaaa"


def test_a_bare_stub_or_a_truncated_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PayloadError, match="download"):
        read_payload(_fake_stub(tmp_path / "stub"))
    single = _single_file(tmp_path, "0.1.0-aaaa")
    single.write_bytes(single.read_bytes()[:-200])
    with pytest.raises(PayloadError, match="download"):
        read_payload(single)


def test_the_app_is_unpacked_once_then_reused(tmp_path: Path) -> None:
    single = _single_file(tmp_path, "0.1.0-aaaa")
    root = tmp_path / "cache" / "runtime"
    app_dir = ensure_unpacked(single, read_payload(single), root)
    assert app_dir == root / "0.1.0-aaaa"
    assert (app_dir / COMPLETE_MARKER).is_file()
    assert os.access(app_dir / "DocMind", os.X_OK)
    assert (app_dir / "_internal" / "libreal.so").is_symlink()
    assert (app_dir / "_internal" / "libreal.so").read_bytes() == (app_dir / "_internal/lib/libreal.so.1").read_bytes()
    (app_dir / "DocMind").write_text("changed")  # a second start must not unpack again
    assert ensure_unpacked(single, read_payload(single), root) == app_dir
    assert (app_dir / "DocMind").read_text() == "changed"


def test_a_new_version_replaces_the_old_and_an_interrupted_unpack_is_redone(tmp_path: Path) -> None:
    root = tmp_path / "runtime"
    old = _single_file(tmp_path, "0.1.0-aaaa")
    ensure_unpacked(old, read_payload(old), root)
    half_done = root / "0.2.0-bbbb"
    half_done.mkdir()  # a killed first start left no completion marker
    (half_done / "DocMind").write_text("partial")
    new = _single_file(tmp_path, "0.2.0-bbbb")
    app_dir = ensure_unpacked(new, read_payload(new), root)
    assert "0.2.0-bbbb" in (app_dir / "DocMind").read_text()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0.2.0-bbbb"]


def test_a_damaged_payload_is_reported_and_leaves_nothing_behind(tmp_path: Path) -> None:
    single = _single_file(tmp_path, "0.1.0-aaaa")
    payload = read_payload(single)
    data = bytearray(single.read_bytes())
    data[payload.offset + 40 : payload.offset + 140] = os.urandom(100)  # corrupted in the download
    single.write_bytes(data)
    root = tmp_path / "runtime"
    with pytest.raises(UnpackError, match="damaged"):
        ensure_unpacked(single, payload, root)
    assert [p.name for p in root.iterdir()] == [UNPACK_LOCK]


def test_too_little_disk_space_is_reported_before_unpacking(tmp_path: Path) -> None:
    single = _single_file(tmp_path, "0.1.0-aaaa")
    archive, _ = _app_archive(tmp_path, "huge")
    splice(tmp_path / "stub", archive, 10**15, "0.1.0-huge", single)  # claims 1 PB unpacked
    with pytest.raises(UnpackError, match="needs .* GB free"):
        ensure_unpacked(single, read_payload(single), tmp_path / "runtime")
    assert not (tmp_path / "runtime" / "0.1.0-huge").exists()


def test_the_app_gets_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_PYI_APPLICATION_HOME_DIR", "/tmp/_MEI123")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/tmp/_MEI123")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/opt/lib")
    env = child_environment()
    assert "_PYI_APPLICATION_HOME_DIR" not in env and "LD_LIBRARY_PATH_ORIG" not in env
    assert env["LD_LIBRARY_PATH"] == "/opt/lib"
    assert env["PYINSTALLER_RESET_ENVIRONMENT"] == "1"


def test_two_first_starts_at_once_unpack_only_once(tmp_path: Path) -> None:
    """A double-click repeated while the first start unpacks waits for it instead of unpacking again."""
    app = tmp_path / "big-app"
    app.mkdir()
    for i in range(40):  # ~40 MB of incompressible data: unpacking takes a noticeable moment
        (app / f"part{i}.bin").write_bytes(os.urandom(1 << 20))
    archive = tmp_path / "big-app.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(app, arcname=".")
    single = tmp_path / "DocMind-big"
    splice(_fake_stub(tmp_path / "stub"), archive, 40 << 20, "0.1.0-big", single)
    root = tmp_path / "runtime"
    script = (f"import sys; sys.path.insert(0, {str(STUB_DIR)!r}); from pathlib import Path; "
              "from onefile_stub import ensure_unpacked; from payload import read_payload; "
              f"single = Path({str(single)!r}); print(ensure_unpacked(single, read_payload(single), Path({str(root)!r})))")
    starts = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in starts]
    assert [process.returncode for process in starts] == [0, 0], outputs
    assert {stdout.strip() for stdout, _ in outputs} == {str(root / "0.1.0-big")}
    assert sum("unpacking into" in stderr for _, stderr in outputs) == 1, outputs
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0.1.0-big"]


def _start(single: Path, root: Path, *args: str, output: Path) -> subprocess.Popen:
    """Run the stub's ``main`` for ``single`` in a new process, as a double-click would (it execs the app)."""
    script = (f"import sys; sys.path.insert(0, {str(STUB_DIR)!r}); from pathlib import Path; import onefile_stub; "
              f"sys.exit(onefile_stub.main(Path({str(single)!r})))")
    with output.open("w") as log:
        return subprocess.Popen([sys.executable, "-c", script, *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "DOCMIND_RUNTIME_DIR": str(root)})


def test_a_newer_version_never_deletes_the_build_a_running_docmind_uses(tmp_path: Path) -> None:
    """Process A runs the old build; process B starts the new one: the old build survives until A exits."""
    root = tmp_path / "runtime"
    stop = tmp_path / "stop-a"
    old = _single_file(tmp_path, "0.1.0-aaaa", script='while [ ! -e "$1" ]; do sleep 0.05; done\necho a-done\n')
    new = _single_file(tmp_path, "0.2.0-bbbb")
    a = _start(old, root, str(stop), output=tmp_path / "a.log")
    try:
        deadline = time.monotonic() + 60
        while "0.1.0-aaaa" not in (tmp_path / "a.log").read_text():  # the old app itself is running now
            assert a.poll() is None and time.monotonic() < deadline, (tmp_path / "a.log").read_text()
            time.sleep(0.05)
        assert [p.name for p in (root / "0.1.0-aaaa" / IN_USE).iterdir()] == [str(a.pid)]

        b = _start(new, root, output=tmp_path / "b.log")
        assert b.wait(timeout=60) == 0 and "0.2.0-bbbb" in (tmp_path / "b.log").read_text()
        assert (root / "0.1.0-aaaa" / COMPLETE_MARKER).is_file()  # A's build is untouched
        assert "0.1.0-aaaa" in (root / "0.1.0-aaaa" / "DocMind").read_text()
        assert a.poll() is None
    finally:
        stop.touch()
        assert a.wait(timeout=60) == 0
    assert "a-done" in (tmp_path / "a.log").read_text()

    again = _start(new, root, output=tmp_path / "b2.log")  # a later start, after A has exited
    assert again.wait(timeout=60) == 0
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0.2.0-bbbb"]


def test_a_build_held_by_a_killed_process_is_freed(tmp_path: Path) -> None:
    """``kill -9`` leaves a lock file behind, but no lock: the next start removes the old build."""
    root = tmp_path / "runtime"
    old = _single_file(tmp_path, "0.1.0-aaaa", script="exec sleep 120\n")
    a = _start(old, root, output=tmp_path / "a.log")
    deadline = time.monotonic() + 60
    while not (root / "0.1.0-aaaa" / IN_USE).is_dir() or "0.1.0-aaaa" not in (tmp_path / "a.log").read_text():
        assert time.monotonic() < deadline, (tmp_path / "a.log").read_text()
        time.sleep(0.05)
    a.kill()
    a.wait()
    new = _single_file(tmp_path, "0.2.0-bbbb")
    ensure_unpacked(new, read_payload(new), root)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0.2.0-bbbb"]
