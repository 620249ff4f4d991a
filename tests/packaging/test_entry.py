"""The frozen app's entry point, run from source: CLI pass-through and the message window on a failed start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from docmind import __version__

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "packaging" / "docmind_entry.py"


def test_cli_commands_pass_through(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ENTRY), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"DocMind {__version__}"


def test_a_failed_double_click_start_shows_the_reason_in_a_window(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    shown = tmp_path / "zenity-args.txt"
    zenity = fake_bin / "zenity"  # stands in for the desktop's dialog tool and records what it was asked
    zenity.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shown}\n')
    zenity.chmod(0o755)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DOCMIND_NO_DIALOG"},
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "DISPLAY": ":0",
        "DOCMIND_DATA_DIR": str(blocker / "data"),
    }
    result = subprocess.run([sys.executable, str(ENTRY)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "DocMind could not start: DocMind cannot write to its data folder" in result.stderr
    args = shown.read_text().splitlines()
    assert args[0] == "--error"
    assert any(arg.startswith("--text=DocMind could not start: DocMind cannot write") for arg in args)
