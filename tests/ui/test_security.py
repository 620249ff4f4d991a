"""Offline and security guarantees of a real running app: loopback only, no file leaks, no phoning home."""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psutil
import pytest

from tests.ui.conftest import Server, start_server, stop_server

SECRET = "TOP-SECRET-7f3a9c: this must never be served"


def _get(server: Server, raw_path: str) -> tuple[int, bytes]:
    """GET a raw, unnormalised path (http.client sends it exactly as given)."""
    parsed = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("GET", raw_path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _upload(server: Server, path: Path) -> str:
    """Upload a file the way the page does; return the server-side path Gradio stored it at."""
    import httpx

    with path.open("rb") as handle:
        response = httpx.post(server.url + "gradio_api/upload", files={"files": (path.name, handle)}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


@pytest.fixture(scope="module")
def secret_file(server: Server) -> Path:
    path = server.data_dir.parent / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.fixture(scope="module")
def uploaded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file uploaded through the app; Gradio keeps it at ``<GRADIO_TEMP_DIR>/<hash>/<name>``."""
    upload = tmp_path_factory.mktemp("upload") / "mine.txt"
    upload.write_text("my own upload")
    return Path(_upload(server, upload))


def test_an_uploaded_file_is_served_back(server: Server, uploaded: Path) -> None:
    """The positive control: the file route does work for the app's own uploads."""
    status, body = _get(server, "/gradio_api/file=" + urllib.parse.quote(str(uploaded)))
    assert status == 200 and body == b"my own upload"


@pytest.mark.parametrize(
    "attempt",
    [
        "{secret}",
        "{temp}/../../{secret_rel}",
        "{temp}/..%2f..%2f{secret_rel}",
        "{temp}%2f%2e%2e%2f%2e%2e%2f{secret_rel}",
        "{temp}/%252e%252e/%252e%252e/{secret_rel}",
        "{quoted_secret}",
        "../../../../../../..{secret}",
        "..%2f..%2f..%2f..%2f..%2f..%2f..{secret}",
        "{data}/docmind.db",
        "/etc/passwd",
        "..%5c..%5c..%5cetc%5cpasswd",
        "file://{secret}",
        "/proc/self/environ",
    ],
)
def test_no_file_outside_the_upload_folder_is_served(
    server: Server, secret_file: Path, uploaded: Path, attempt: str
) -> None:
    temp = uploaded.parents[1]
    root_depth = "../" * 12
    path = attempt.format(
        secret=secret_file,
        secret_rel=(root_depth + str(secret_file).lstrip("/")),
        quoted_secret=urllib.parse.quote(str(secret_file), safe=""),
        temp=temp,
        data=server.data_dir,
    )
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
        status, body = _get(server, prefix + path)
        assert SECRET.encode() not in body, f"{prefix}{path} leaked the secret"
        assert b"root:" not in body and b"SQLite format" not in body and b"DOCMIND_DATA_DIR" not in body
        assert status != 200 or not body.strip() or body.lstrip().startswith(b"<!doctype html>"), (
            f"{prefix}{path} answered {status} with {body[:80]!r}"
        )


def test_uploads_land_in_a_private_per_app_folder(server: Server, uploaded: Path) -> None:
    temp = uploaded.parents[1]
    assert temp.name.startswith("docmind-ui-"), f"uploads went to the shared {temp}"
    assert stat.S_IMODE(temp.stat().st_mode) == 0o700


def test_binds_loopback_only_and_talks_to_no_one_else(server: Server) -> None:
    process = psutil.Process(server.process.pid)
    connections = process.net_connections(kind="inet")
    listening = [c for c in connections if c.status == psutil.CONN_LISTEN]
    assert listening, "the server listens on nothing"
    for conn in listening:
        assert ipaddress.ip_address(conn.laddr.ip).is_loopback, f"listening on {conn.laddr}"
    for conn in connections:
        if conn.raddr:
            assert ipaddress.ip_address(conn.raddr.ip).is_loopback, f"connected to {conn.raddr}"
    port = urllib.parse.urlsplit(server.url).port
    outside = _non_loopback_address()
    if outside is None:
        pytest.fail("this machine has no non-loopback IPv4 address to probe from")
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((outside, port)) != 0, f"the app answers on {outside}:{port}"


def _non_loopback_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not ipaddress.ip_address(address.address).is_loopback:
                return address.address
    return None


def test_upload_over_the_size_limit_is_refused_with_a_clear_message(server: Server, tmp_path: Path) -> None:
    import httpx

    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (3 * 1024 * 1024))  # the test server's limit is 2 MB
    with big.open("rb") as handle:
        response = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.txt", handle)}, timeout=30)
    assert response.status_code == 413
    assert "maximum allowed size of 2097152 bytes" in response.text


def test_another_host_needs_a_user_account_and_warns(tmp_path: Path, server_env: dict[str, str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "DOCMIND_DATA_DIR": str(data), **server_env}

    def docmind(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "docmind", *args], input=stdin, env=env, capture_output=True,
                              text=True, timeout=120)

    refused = docmind("serve", "--no-browser", "--host", "0.0.0.0")
    assert refused.returncode == 1 and "without logins" in refused.stderr.strip().splitlines()[-1]
    assert docmind("users", "add", "alice", stdin="a long password\n").returncode == 0
    other = start_server(data, tmp_path / "server.log", "--host", "0.0.0.0", env=server_env)
    try:
        assert "not encrypted" in other.log()
        listening = [c for c in psutil.Process(other.process.pid).net_connections("inet") if c.status == "LISTEN"]
        assert any(c.laddr.ip == "0.0.0.0" for c in listening)
    finally:
        stop_server(other)
