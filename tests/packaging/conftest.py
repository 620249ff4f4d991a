"""Helpers for the launcher tests: start a DocMind app process and wait for the address it prints."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUNNING = re.compile(r"running at (http://\S+/)")


@dataclass
class AppProcess:
    """A started ``serve``/``app`` process, its URL and its combined output file."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_app(command: list[str], env: dict[str, str], log_path: Path, timeout: float = 180) -> AppProcess:
    """Run ``command`` and wait until it prints the address it serves (or already serves) on."""
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = RUNNING.search(log_path.read_text(errors="replace"))
        if match:
            return AppProcess(process, match.group(1), log_path)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{command} did not start:\n{log_path.read_text(errors='replace')}")
