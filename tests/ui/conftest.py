"""A real ``docmind serve`` process per test module, and a headless Debian Chromium for browser tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.server import wait_for_url

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 90
WAIT_MS = 60_000
"""How long a browser test waits for the app by default."""


@dataclass
class Server:
    """A running ``docmind serve`` subprocess."""

    url: str
    process: subprocess.Popen
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None,
    command: tuple[str, ...] = ("serve", "--no-browser"),
) -> Server:
    """Run ``docmind serve --no-browser ARGS`` (or another ``command``) and wait until it prints its URL."""
    full_env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), **(env or {})}
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "docmind", *command, *args],
        cwd=ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        url = wait_for_url(process, log_path, START_TIMEOUT)
    except RuntimeError:
        process.kill()
        raise
    return Server(url, process, data_dir, log_path)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server_env(tiny_model_dir: Path) -> dict[str, str]:
    """The environment of the module's server: the tiny test model, offline, a small upload limit."""
    return {
        "DOCMIND_MODEL_PATH": str(tiny_model_dir),
        "DOCMIND_MAX_FILE_SIZE_MB": "2",
        "HF_HUB_OFFLINE": "1",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]) -> Iterator[Server]:
    """One DocMind server for the whole test module, with its own data dir."""
    base = tmp_path_factory.mktemp("ui-server")
    (base / "data").mkdir()
    running = start_server(base / "data", base / "server.log", env=server_env)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def app_page(browser, url: str, *, height: int = 900, wait_ms: int = WAIT_MS,
             prepare: Callable[[object], None] | None = None) -> Iterator[object]:
    """A page of the app at ``url`` in a browser context of its own (closed afterwards); ``prepare(page)``
    runs before the page loads (to listen for requests or dialogs)."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    page = context.new_page()
    page.set_default_timeout(wait_ms)
    if prepare:
        prepare(page)
    page.goto(url)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
