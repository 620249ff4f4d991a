"""Finding files: folders recurse; hidden and unsupported files are skipped and counted; bad paths reported."""

from __future__ import annotations

import os
from pathlib import Path

from docmind.cache.discovery import discover


def test_folders_recurse_and_skip_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ("a.txt", "sub/b.md", "sub/deeper/c.pdf", ".hidden.txt", "song.mp3", ".git/config.txt"):
        (tmp_path / name).write_text("x")
    found = discover([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == ["a.txt", "sub/b.md", "sub/deeper/c.pdf"]
    assert found.skipped == 2  # .hidden.txt and song.mp3; hidden folders are not entered
    assert found.failed == []


def test_the_same_file_given_twice_is_listed_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    os.symlink(tmp_path / "a.txt", tmp_path / "link.txt")
    found = discover([tmp_path / "a.txt", tmp_path, tmp_path / "link.txt"])
    assert found.files == [(tmp_path / "a.txt").resolve()]


def test_missing_paths_symlink_loops_and_unsupported_explicit_files_fail(tmp_path: Path) -> None:
    os.symlink(tmp_path / "loop_b.txt", tmp_path / "loop_a.txt")
    os.symlink(tmp_path / "loop_a.txt", tmp_path / "loop_b.txt")
    os.symlink(tmp_path / "gone.txt", tmp_path / "broken.txt")
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    found = discover([tmp_path / "nope", tmp_path / "loop_a.txt", tmp_path / "broken.txt", tmp_path / "song.mp3"])
    reasons = {Path(f.path).name: f.error for f in found.failed}
    assert reasons["nope"] == "no such file or folder"
    assert reasons["loop_a.txt"].startswith("symlink loop")
    assert reasons["broken.txt"].startswith("broken symlink")
    assert reasons["song.mp3"].startswith("unsupported file type '.mp3'")
    assert found.files == []


def test_symlink_loop_inside_a_folder_is_reported_and_the_rest_found(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("x")
    os.symlink(tmp_path / "self.txt", tmp_path / "self.txt")
    found = discover([tmp_path])
    assert [p.name for p in found.files] == ["good.txt"]
    assert [(Path(f.path).name, f.error.split(":")[0]) for f in found.failed] == [("self.txt", "symlink loop")]
