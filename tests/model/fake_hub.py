"""A local HTTP server that answers the hub endpoints huggingface_hub calls, serving a model directory.

- ``GET /api/models/<repo>[/revision/<rev>]``: model info with ``siblings`` (size, blobId, lfs sha256).
- ``HEAD|GET /<repo>/resolve/<rev>/<file>``: ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``/``X-Linked-Size``
  for LFS files, ``Content-Length``, ``Accept-Ranges``; ``Range`` requests answer 206.

It counts the bytes it sends per file, can cut every response after ``cut_after`` bytes (a dropped
connection), can advertise a fake size (``fake_sizes``) to test the disk check, and can hold every file
body until ``release`` is set (two downloads that surely overlap).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from collections import Counter
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo_id: str, model_dir: Path) -> None:
        self.repo_id = repo_id
        self.files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
        self.sent: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str | None]] = []
        self.cut_after: int | None = None
        self.fake_sizes: dict[str, int] = {}
        self.release = threading.Event()
        self.release.set()
        self.file_gets = threading.Semaphore(0)
        """Released once per file GET that has arrived (before its body is held or sent)."""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(".safetensors")

    def size(self, name: str) -> int:
        return self.fake_sizes.get(name, len(self.files[name]))

    def etag(self, name: str) -> str:
        data = self.files[name]
        if self.is_lfs(name):
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()

    def model_info(self) -> dict:
        siblings = []
        for name in self.files:
            entry = {"rfilename": name, "size": self.size(name), "blobId": self.etag(name)}
            if self.is_lfs(name):
                entry["lfs"] = {"size": self.size(name), "sha256": self.etag(name), "pointerSize": 134}
            siblings.append(entry)
        return {"id": self.repo_id, "modelId": self.repo_id, "sha": COMMIT, "private": False,
                "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        hub = self
        info = re.compile(rf"^/api/models/{re.escape(hub.repo_id)}(/revision/[^/?]+)?(\?.*)?$")
        resolve = re.compile(rf"^/{re.escape(hub.repo_id)}/resolve/[^/]+/(.+)$")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path, self.headers.get("Range")))
                if info.match(self.path):
                    body = json.dumps(hub.model_info()).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self._file(send_body=True)

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path, None))
                self._file(send_body=False)

            def _file(self, send_body: bool) -> None:
                match = resolve.match(self.path.split("?")[0])
                name = match.group(1) if match else None
                if name not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = hub.files[name]
                start = 0
                ranged = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if ranged and send_body:
                    start = int(ranged.group(1))
                self.send_response(206 if ranged and send_body else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hub.etag(name)}"')
                if hub.is_lfs(name):
                    self.send_header("X-Linked-Etag", f'"{hub.etag(name)}"')
                    self.send_header("X-Linked-Size", str(hub.size(name)))
                self.send_header("Accept-Ranges", "bytes")
                if ranged and send_body:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start) if send_body else str(hub.size(name)))
                self.end_headers()
                if not send_body:
                    return
                hub.file_gets.release()
                hub.release.wait(60)
                body = data[start:]
                if hub.cut_after is not None and len(body) > hub.cut_after:
                    self.wfile.write(body[: hub.cut_after])
                    self.wfile.flush()
                    hub.sent[name] += hub.cut_after
                    self.close_connection = True
                    self.connection.shutdown(2)  # drop the connection mid-file
                    return
                self.wfile.write(body)
                hub.sent[name] += len(body)

        return Handler
