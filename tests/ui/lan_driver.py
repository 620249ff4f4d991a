"""Run inside a network namespace by ``test_lan_login.py``: serve DocMind on a non-loopback address and
probe it as an anonymous client, as two users, and as a password guesser. Prints one JSON document of
what it observed; the test asserts on it. Usage: ``lan_driver.py ADDRESS WORKDIR``."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22"}
ANONYMOUS_PROBES = [
    ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/gradio_api/openapi.json"),
    ("GET", "/gradio_api/file=/etc/hostname"), ("GET", "/gradio_api/upload_progress?upload_id=x"),
    ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/queue/data?session_hash=x"),
    ("POST", "/gradio_api/call/sessions"), ("POST", "/gradio_api/call/chat"), ("POST", "/gradio_api/upload"),
    ("GET", "/gradio_api/heartbeat/x"), ("POST", "/gradio_api/cancel"),
    ("POST", "/gradio_api/reset"), ("GET", "/monitoring/x"), ("GET", "/gradio_api/run-history/buckets"),
    ("GET", "/docmind/anything-added-later"),
]


def docmind(data_dir: Path, *args: str, stdin: str = "", timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "docmind", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def start(data_dir: Path, address: str, log: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    env.pop("DOCMIND_MODEL_PATH", None)
    process = subprocess.Popen([sys.executable, "-m", "docmind", "serve", "--no-browser", "--host", address],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        match = re.search(r"running at (http://\S+/)", log.read_text(errors="replace"))
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"docmind serve did not start:\n{log.read_text(errors='replace')}")


def login(url: str, name: str, password: str) -> httpx.Response:
    return httpx.post(url + "login", data={"username": name, "password": password}, timeout=120)


def call(url: str, cookies: httpx.Cookies | None, api: str, *data: object) -> str:
    """A ``/gradio_api/call`` round trip; returns the event stream's text (``event: error`` on failure)."""
    with httpx.Client(cookies=cookies, timeout=120) as client:
        started = client.post(f"{url}gradio_api/call/{api}", json={"data": list(data)})
        if started.status_code != 200:
            return f"HTTP {started.status_code}"
        return client.get(f"{url}gradio_api/call/{api}/{started.json()['event_id']}").text


def run_event(url: str, cookies: httpx.Cookies, elem_id: str, event: str, *data: object) -> str:
    """Trigger the page's ``event`` handler of the component ``elem_id`` as the browser does (``queue/join``
    with its ``fn_index``: handlers hidden from the API are reachable this way too); returns
    "ok: OUTPUT" or "refused: MESSAGE"."""
    with httpx.Client(cookies=cookies, timeout=120) as client:
        config = client.get(url + "config").json()
        component = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
        fn_index = next(d["id"] for d in config["dependencies"] if [component, event] in d["targets"])
        session_hash = secrets.token_hex(8)
        joined = client.post(url + "gradio_api/queue/join", json={
            "data": list(data), "fn_index": fn_index, "trigger_id": component, "session_hash": session_hash,
            "event_data": None})
        if joined.status_code != 200:
            return f"refused: HTTP {joined.status_code}"
        with client.stream("GET", url + f"gradio_api/queue/data?session_hash={session_hash}") as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    return f"ok: {output.get('data')}" if message.get("success") else f"refused: {output.get('error')}"
    return "no answer"


def _raise_error(result: dict) -> dict:
    """``/chat`` reports a refused turn in its result's ``error``."""
    if result.get("error"):
        raise RuntimeError(result["error"])
    return result


def main(address: str, work: Path) -> dict:
    from gradio_client import Client

    report: dict = {}
    empty = work / "empty"
    refused = docmind(empty, "serve", "--no-browser", "--host", address)
    report["refused_without_users"] = {"code": refused.returncode, "stderr": refused.stderr.strip()}

    data = work / "data"
    for name, password in PASSWORDS.items():
        added = docmind(data, "users", "add", name, stdin=password + "\n")
        assert added.returncode == 0, added.stderr
    assert docmind(data, "collections", "create", "Taxes").returncode == 0
    process, url = start(data, address, work / "serve.log")
    try:
        report["url"] = url
        home = httpx.get(url, timeout=120)
        report["anonymous_home"] = {"status": home.status_code, "auth_required": '"auth_required": true' in
                                    home.text.replace('"auth_required":true', '"auth_required": true')}
        report["anonymous"] = {f"{method} {path}": httpx.request(method, url.rstrip("/") + path, timeout=120).status_code
                               for method, path in ANONYMOUS_PROBES}

        alice_login = login(url, "alice", PASSWORDS["alice"])
        report["login_cookies"] = alice_login.headers.get_list("set-cookie")
        alice = Client(url, auth=("alice", PASSWORDS["alice"]), verbose=False)
        bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
        answer = alice.predict("What is in my documents?", api_name="/chat")
        alice_session = answer["session"]
        report["alice_session"] = alice_session
        report["alice_lists"] = [s["id"] for s in alice.predict(api_name="/sessions")]
        report["bob_lists"] = [s["id"] for s in bob.predict(api_name="/sessions")]
        attempts = {
            "export": lambda: bob.predict(alice_session, "json", api_name="/export_session"),
            "rename": lambda: bob.predict(alice_session, "taken over", api_name="/rename_session"),
            "delete": lambda: bob.predict(alice_session, api_name="/delete_session"),
            "chat_in": lambda: _raise_error(bob.predict("Let me in", alice_session, True, api_name="/chat")),
        }
        report["bob_on_alice_client"] = {}
        for name, attempt in attempts.items():
            try:
                result = attempt()
                report["bob_on_alice_client"][name] = f"ALLOWED: {str(result)[:200]}"
            except Exception as error:  # noqa: BLE001 - the refusal is what we record
                report["bob_on_alice_client"][name] = f"refused: {error}"
        bob_cookies = login(url, "bob", PASSWORDS["bob"]).cookies
        report["bob_on_alice_http"] = {
            "export": call(url, bob_cookies, "export_session", alice_session, "json"),
            "rename": call(url, bob_cookies, "rename_session", alice_session, "taken over"),
        }
        alice_cookies = login(url, "alice", PASSWORDS["alice"]).cookies
        report["export_route"] = {
            who: (lambda r: {"status": r.status_code, "has_question": "What is in my documents?" in r.text,
                             "disposition": r.headers.get("content-disposition", "")})(
                httpx.get(f"{url}docmind/export/{alice_session}?format=md", cookies=cookies, timeout=120))
            for who, cookies in (("alice", alice_cookies), ("bob", bob_cookies), ("anonymous", None))}
        report["bob_on_alice_page_events"] = {
            "scope_change": run_event(url, bob_cookies, "docmind-scope-chooser", "change", ["Taxes"], alice_session),
            "scope_open": run_event(url, bob_cookies, "docmind-session-id", "change", alice_session),
        }
        report["alice_scope_change"] = run_event(url, alice_cookies, "docmind-scope-chooser", "change", ["Taxes"],
                                                 alice_session)
        report["bob_server_wide"] = {
            "export_everything": run_event(url, bob_cookies, "docmind-export", "click"),
            "watch_folder": run_event(url, bob_cookies, "docmind-watch", "click", "/etc", "(no collection)"),
            "model_server": run_event(url, bob_cookies, "docmind-server-use", "click", "http://127.0.0.1:9/v1", "", ""),
            "model_download": run_event(url, bob_cookies, "docmind-download", "click", "Qwen/Qwen3-0.6B"),
            "model_folder": run_event(url, bob_cookies, "docmind-use-folder", "click", "/etc"),
        }
        report["alice_after"] = {"sessions": alice.predict(api_name="/sessions"),
                                 "export": alice.predict(alice_session, "json", api_name="/export_session")}

        report["guessing"] = [login(url, "alice", f"wrong-{n}").status_code for n in range(7)]
        report["right_password_while_throttled"] = login(url, "alice", PASSWORDS["alice"]).status_code
    finally:
        process.terminate()
        process.wait(30)
    report["log"] = (work / "serve.log").read_text(errors="replace")
    with sqlite3.connect(data / "docmind.db") as db:
        report["scope_changes_of_alice"] = db.execute(
            "SELECT COUNT(*) FROM session_scope_changes WHERE session_id = ?", (report["alice_session"],)).fetchone()[0]
        report["watched_folders"] = db.execute("SELECT COUNT(*) FROM watched_folders").fetchone()[0]
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2])), default=str))
