"""Show an error the user can see when there is no terminal: a native message box where one exists.

Standard library only: the single-file stub and the frozen app both import it. The text always goes to
stderr too, so a terminal user and the logs see it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

TITLE = "DocMind"


def show_error(message: str) -> None:
    """Tell the user that DocMind cannot start: stderr, plus a message window when one can be shown."""
    if sys.stderr is not None:
        print(f"DocMind: {message}", file=sys.stderr, flush=True)
    if os.environ.get("DOCMIND_NO_DIALOG"):
        return
    try:
        _show_window(message)
    except (OSError, subprocess.SubprocessError, AttributeError):
        pass  # no window system: stderr is all we have


def _show_window(message: str) -> None:
    if sys.platform == "win32":
        import ctypes

        ctypes.windll.user32.MessageBoxW(None, message, TITLE, 0x10)  # MB_ICONERROR
    elif sys.platform == "darwin":
        script = 'display alert (item 1 of argv) message (item 2 of argv) as critical'
        subprocess.run(["osascript", "-e", f"on run argv\n{script}\nend run", TITLE, message], timeout=600)
    elif os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        _show_linux_window(message)


def _show_linux_window(message: str) -> None:
    for tool, args in (
        ("zenity", ["--error", f"--title={TITLE}", "--no-markup", f"--text={message}"]),
        ("kdialog", ["--title", TITLE, "--error", message]),
        ("xmessage", ["-center", f"{TITLE}: {message}"]),
    ):
        path = shutil.which(tool)
        if path:
            subprocess.run([path, *args], timeout=600)
            return
