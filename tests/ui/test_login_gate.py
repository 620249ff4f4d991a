"""The login gate on a real app on loopback with a user account: logins expire, and a route another
module adds later is refused without a login and sees the user through ``require_user``."""

from __future__ import annotations

import time

import httpx
import pytest

from docmind.config import load_settings
from docmind.storage.users import Users
from docmind.ui.auth import require_user

PASSWORD = "alice-password-1"


@pytest.fixture
def app(data_dir):
    from fastapi import Depends

    from docmind.ui import serve

    Users(data_dir / "docmind.db").add("alice", PASSWORD)
    running = serve(load_settings(data_dir=data_dir, login_session_seconds=3), open_browser=False)

    @running.demo.app.get("/docmind/whoami")
    def whoami(user: str | None = Depends(require_user)) -> dict:
        return {"user": user}

    yield running
    running.close()


def test_a_login_works_on_loopback_then_expires(app):
    base = app.url.rstrip("/")
    assert httpx.get(base + "/docmind/whoami").status_code == 401, "users exist: loopback needs a login too"
    with httpx.Client(base_url=base) as client:
        assert client.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 200
        assert client.get("/docmind/whoami").json() == {"user": "alice"}
        assert client.get("/gradio_api/info").status_code == 200
        time.sleep(3.5)
        assert client.get("/docmind/whoami").status_code == 401
        assert client.get("/gradio_api/info").status_code == 401, "an expired login is refused everywhere"
