"""`docmind` with no command starts the app and opens the browser, like `docmind app`."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from tests.ui.conftest import start_server, stop_server


def test_bare_docmind_starts_the_app_and_opens_the_browser(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"  # stands in for the user's browser: records the URL it is given
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    server = start_server(tmp_path / "data", tmp_path / "app.log", env={"BROWSER": str(browser)}, command=())
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert response.status == 200
        assert server.url.startswith("http://127.0.0.1:")
        for _ in range(50):
            if opened.exists():
                break
            time.sleep(0.1)
        assert opened.read_text().strip() == server.url
    finally:
        stop_server(server)
