"""Serving a team: a real ``docmind serve`` bound to 192.0.2.10 inside a network namespace made by the test
(``unshare -rn``; never a real network), probed by ``lan_driver.py`` from inside the namespace."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ADDRESS = "192.0.2.10"
DRIVER = Path(__file__).with_name("lan_driver.py")
NAMESPACE = f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo && exec \"$0\" \"$@\""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("the LAN test needs `unshare` and `ip` (util-linux, iproute2)")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:  # a container that forbids user namespaces: the test cannot be set up there
        pytest.skip(f"this machine cannot create a network namespace: {probe.stderr.strip()}")
    work = tmp_path_factory.mktemp("lan")
    done = subprocess.run(["unshare", "-rn", "sh", "-c", NAMESPACE, sys.executable, str(DRIVER), ADDRESS, str(work)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_serving_a_network_without_users_is_refused(report):
    refused = report["refused_without_users"]
    assert refused["code"] == 1
    assert refused["stderr"].startswith("docmind: error: Refusing to serve on 192.0.2.10 without logins")
    assert "\n" not in refused["stderr"]


def test_every_route_refuses_a_client_that_has_not_logged_in(report):
    assert report["anonymous_home"] == {"status": 200, "auth_required": True}, "the home page is only the login form"
    refused = {route: status for route, status in report["anonymous"].items() if status not in (401, 403)}
    assert not refused, f"answered without a login: {refused}"


def test_login_cookies_are_httponly_samesite_and_expire(report):
    cookies = report["login_cookies"]
    assert len(cookies) == 2
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=43200" in cookie


def test_users_see_only_their_own_chats(report):
    alice_session = report["alice_session"]
    assert report["alice_lists"] == [alice_session]
    assert alice_session not in report["bob_lists"]
    for action, outcome in report["bob_on_alice_client"].items():
        assert outcome.startswith("refused: No session with id"), f"bob could {action} alice's chat: {outcome}"
    for action, outcome in report["bob_on_alice_http"].items():
        assert outcome.startswith("event: error") and "No session with id" in outcome, (action, outcome)
    after = report["alice_after"]
    assert [s["title"] for s in after["sessions"]] == ["What is in my documents?"], "nothing of alice's changed"
    assert json.loads(after["export"])["messages"][0]["content"] == "What is in my documents?"


def test_a_chat_export_downloads_for_its_owner_only(report):
    exports = report["export_route"]
    assert exports["alice"]["status"] == 200 and exports["alice"]["has_question"]
    assert exports["alice"]["disposition"].startswith("attachment; filename*=UTF-8''")
    assert exports["bob"] == {"status": 404, "has_question": False, "disposition": ""}, "bob cannot download it"
    assert exports["anonymous"]["status"] == 401


def test_page_events_refuse_another_users_chat(report):
    """The page's own handlers (reachable by ``queue/join`` even when hidden from the API) check the owner."""
    for action, outcome in report["bob_on_alice_page_events"].items():
        assert outcome.startswith("refused: No session with id"), f"bob could {action} on alice's chat: {outcome}"
    assert report["alice_scope_change"].startswith("ok:") and "Taxes" in report["alice_scope_change"]
    assert report["scope_changes_of_alice"] == 1, "only alice's own change was recorded"


def test_what_reaches_beyond_a_users_chats_is_left_to_the_server(report):
    for action, outcome in report["bob_server_wide"].items():
        assert outcome.startswith("refused: On a shared DocMind,"), f"bob could {action}: {outcome}"
    assert report["watched_folders"] == 0


def test_failed_logins_are_rate_limited(report):
    assert report["guessing"][:5] == [400] * 5
    assert report["guessing"][5:] == [429, 429]
    assert report["right_password_while_throttled"] == 429


def test_the_log_warns_that_traffic_is_not_encrypted(report):
    assert report["log"].count("traffic (passwords included) is not encrypted") == 1
    assert "alice-password-1" not in report["log"]
