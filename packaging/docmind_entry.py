"""Entry point of the frozen DocMind: the command line, and with no arguments the desktop app.

A double-click starts the app (``docmind`` with no arguments). If it fails before the page is up, the
user gets a message window with the reason, since there may be no terminal to read.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys

from native_dialog import show_error

_ERROR_PREFIX = "docmind: error: "


class _StderrTee:
    """Pass stderr through and remember the last error line the CLI printed."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.last_error = ""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith(_ERROR_PREFIX):
                self.last_error = line.removeprefix(_ERROR_PREFIX)
        return self._stream.write(text) if self._stream is not None else len(text)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _restore_system_library_path() -> None:
    """Give child processes (browser, dialogs) the system library path, not the bundle's."""
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBPATH"):
        original = os.environ.pop(f"{name}_ORIG", None)
        if original is not None:
            os.environ[name] = original
        elif getattr(sys, "_MEIPASS", None) and os.environ.get(name, "").startswith(sys._MEIPASS):
            del os.environ[name]


def _run_app(cli_main) -> int:
    tee = _StderrTee(sys.stderr)
    sys.stderr = tee
    try:
        code = cli_main([])
    except Exception as error:  # noqa: BLE001 - the last chance to tell a double-clicking user
        logging.getLogger("docmind").exception("DocMind failed to start")
        code, tee.last_error = 1, f"{type(error).__name__}: {error}"
    if code not in (0, 130):
        show_error(f"DocMind could not start: {tee.last_error or 'see the log file in the data folder'}")
    return code


def main() -> int:
    multiprocessing.freeze_support()
    _restore_system_library_path()
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")  # the CPU build has no CUDA kernels
    from docmind.cli import main as cli_main

    argv = sys.argv[1:]
    return cli_main(argv) if argv else _run_app(cli_main)


if __name__ == "__main__":
    sys.exit(main())
