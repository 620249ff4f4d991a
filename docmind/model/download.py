"""First-run download of a hub model into the data dir: disk check, resume, retries, verification.

``huggingface_hub`` provides the file list (``model_info``), each file's metadata
(``get_hf_file_metadata``: size, etag, commit) and the HTTP session (``HF_ENDPOINT``, ``HF_HOME``,
proxies, token). The bytes come through our own HTTP Range requests into ``<file>.part``, because
``huggingface_hub`` deletes a partial file when a call fails, so a broken download would restart from
zero on the next run. A file is renamed into place only after its size and hash match (sha256 for
LFS files, the git blob id for small ones). ``docmind-manifest.json`` is written last and marks the
download complete; ``verify_model`` re-hashes against it.

One download of a model runs at a time across processes (the app and ``docmind model download``): a
file lock next to the model folder. A second download waits for it, reporting the first one's progress,
and then finds the files done.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from docmind.model.errors import DiskSpaceError, DownloadCancelledError, DownloadError
from docmind.model.loading import MANIFEST, safetensors_problem

log = logging.getLogger(__name__)

WANTED = ("*.json", "*.safetensors", "*.txt", "*.jinja", "*.model", "*.tiktoken")
SKIPPED = ("*.bin", "*.pt", "*.gguf", "*.onnx", "*.h5", "*.msgpack")
DISK_MARGIN_BYTES = 200 * 1024**2
CHUNK_BYTES = 1024**2
RETRIES = 5
LOCK_WAIT_SECONDS = 6 * 3600.0
"""How long a download waits for another process's download of the same model before giving up."""
LOCK_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RemoteFile:
    """A file of the model repo, with what it must hash to."""

    name: str
    size: int
    sha256: str | None = None
    """LFS files (weights): the sha256 of the content."""
    blob_id: str | None = None
    """Small files: the git blob id (sha1 of ``blob <size>\\0<content>``)."""


@dataclass(frozen=True)
class DownloadProgress:
    """Progress for a bar: bytes, speed and time left, over the whole model."""

    file: str
    bytes_done: int
    bytes_total: int
    speed_bytes_per_s: float
    eta_seconds: float | None


@dataclass
class DownloadReport:
    """What a download run did."""

    model: str
    path: str
    commit: str
    files: int
    bytes_total: int
    bytes_downloaded: int
    """Bytes fetched in this run."""
    bytes_resumed: int
    """Bytes already on disk from an earlier run (partial or whole files)."""
    seconds: float


@dataclass
class FileCheck:
    name: str
    ok: bool
    problem: str | None = None


@dataclass
class VerifyReport:
    """Result of re-checking the files on disk."""

    model: str
    path: str
    ok: bool
    files: list[FileCheck] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Transient(Exception):
    """A retryable failure (connection dropped, 5xx, 429)."""


def _hub():
    """huggingface_hub pieces, imported on use (it reads HF_ENDPOINT and HF_HUB_OFFLINE at import)."""
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise DownloadError("Downloads are disabled because HF_HUB_OFFLINE is set. Unset it and try again.")
    return huggingface_hub


def list_remote_files(hub_id: str, *, revision: str = "main",
                      endpoint: str | None = None) -> tuple[str, list[RemoteFile]]:
    """The commit that ``revision`` points to and the files DocMind needs from it."""
    hub = _hub()
    try:
        info = hub.HfApi(endpoint=endpoint).model_info(hub_id, revision=revision, files_metadata=True)
    except hub.errors.RepositoryNotFoundError as error:
        raise DownloadError(f"The model {hub_id} does not exist on the hub (or needs a login).") from error
    except Exception as error:  # noqa: BLE001 - network problems of any kind
        raise DownloadError(f"Could not reach the model hub for {hub_id}: {error}. Check the connection "
                            "(or HF_ENDPOINT / proxy settings) and try again.") from error
    files = []
    for sibling in info.siblings or []:
        name = sibling.rfilename
        if not any(fnmatch.fnmatch(name, p) for p in WANTED) or any(fnmatch.fnmatch(name, p) for p in SKIPPED):
            continue
        lfs = sibling.lfs
        files.append(RemoteFile(name=name, size=lfs.size if lfs else (sibling.size or 0),
                                sha256=lfs.sha256 if lfs else None, blob_id=None if lfs else sibling.blob_id))
    if not any(f.name.endswith(".safetensors") for f in files):
        raise DownloadError(f"{hub_id} has no .safetensors weights; DocMind cannot use it.")
    return info.sha, files


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or would hold it: the nearest existing parent)."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def human_bytes(count: float) -> str:
    """A byte count as people read it: ``512 B``, ``34 KB``, ``1.2 GB`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit in ("B", "KB") else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _on_disk(dest: Path, remote: RemoteFile) -> int:
    final = dest / remote.name
    if final.is_file() and final.stat().st_size == remote.size:
        return remote.size
    part = _part(dest, remote)
    return min(part.stat().st_size, remote.size) if part.is_file() else 0


def _part(dest: Path, remote: RemoteFile) -> Path:
    return dest / f"{remote.name}.part"


def check_disk(dest: Path, needed: int) -> None:
    """Refuse, with the numbers, when ``needed`` bytes (plus a margin) do not fit on ``dest``'s disk."""
    free = free_disk_bytes(dest)
    if needed + DISK_MARGIN_BYTES > free:
        raise DiskSpaceError(f"Not enough disk space: the download needs {human_bytes(needed)} "
                             f"(plus {human_bytes(DISK_MARGIN_BYTES)} to spare) but only {human_bytes(free)} is free "
                             f"on {dest.anchor or dest}. Free up space or choose another --data-dir.")


def download_model(hub_id: str, dest: Path, *, revision: str = "main", endpoint: str | None = None,
                   progress: Callable[[DownloadProgress], None] | None = None,
                   cancel: threading.Event | None = None, retries: int = RETRIES,
                   lock_wait: float = LOCK_WAIT_SECONDS) -> DownloadReport:
    """Download ``hub_id`` into ``dest``, resuming partial files; raise a ``ModelError`` on failure.

    ``cancel`` may be set from another thread: the download stops at the next chunk, keeping the
    partial file for the next run. While another process downloads the same model, this waits (up to
    ``lock_wait`` seconds, reporting that download's progress) and then completes what is left.
    """
    commit, files = list_remote_files(hub_id, revision=revision, endpoint=endpoint)
    dest.mkdir(parents=True, exist_ok=True)
    lock = _download_lock(hub_id, dest, files, progress, cancel, lock_wait)
    try:
        return _download_files(hub_id, dest, commit, files, endpoint, progress, cancel, retries)
    finally:
        lock.release()


def download_lock_path(dest: Path) -> Path:
    """The lock file that one download of the model in ``dest`` holds (beside the folder, not in it)."""
    return dest.parent / f".{dest.name}.download.lock"


def _download_lock(hub_id: str, dest: Path, files: list[RemoteFile],
                   progress: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None,
                   wait: float) -> Any:
    """Hold the model's download lock, waiting while another process has it (and reporting the bytes
    that process has on disk so far)."""
    from filelock import FileLock, Timeout

    lock = FileLock(download_lock_path(dest))
    deadline = time.monotonic() + wait
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        log.warning("A download of %s is already running in another process; waiting for it to finish.", hub_id)
    total = sum(f.size for f in files)
    while True:
        if cancel is not None and cancel.is_set():
            raise DownloadCancelledError("Download cancelled while another download of the model was running.")
        if progress is not None:
            try:
                done = sum(_on_disk(dest, f) for f in files)
            except OSError:  # a file was renamed into place between two looks: report at the next poll
                done = None
            if done is not None:
                progress(DownloadProgress("(another download)", done, total, 0.0, None))
        try:
            lock.acquire(timeout=min(LOCK_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            return lock
        except Timeout:
            if time.monotonic() >= deadline:
                raise DownloadError(f"A download of {hub_id} is already running in another process; wait for it "
                                    "to finish (or stop it) and try again.") from None


def _download_files(hub_id: str, dest: Path, commit: str, files: list[RemoteFile], endpoint: str | None,
                    progress: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None,
                    retries: int) -> DownloadReport:
    """Fetch what is missing of ``files`` into ``dest`` (the caller holds the download lock)."""
    started = time.perf_counter()
    total = sum(f.size for f in files)
    present = sum(_on_disk(dest, f) for f in files)
    check_disk(dest, total - present)
    manifest = dest / MANIFEST
    known = _manifest_files(manifest)
    manifest.unlink(missing_ok=True)  # re-written once every file is verified
    state = {"done": present, "fetched": 0}

    def report(name: str) -> None:
        if progress is None:
            return
        elapsed = max(time.perf_counter() - started, 1e-6)
        speed = state["fetched"] / elapsed
        eta = (total - state["done"]) / speed if speed > 0 else None
        progress(DownloadProgress(name, state["done"], total, speed, eta))

    hub = _hub()
    for remote in files:
        final = dest / remote.name
        if _is_current(final, remote, known.get(remote.name)):
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        url = hub.hf_hub_url(hub_id, remote.name, revision=commit, endpoint=endpoint)
        _fetch(url, _part(dest, remote), remote, state, report, cancel, retries)
        problem = _hash_problem(_part(dest, remote), remote)
        if problem:
            _part(dest, remote).unlink(missing_ok=True)
            raise DownloadError(f"{remote.name} arrived damaged ({problem}); it was deleted. "
                                "Run `docmind model download` again.")
        os.replace(_part(dest, remote), final)
        report(remote.name)
    manifest.write_text(json.dumps({"model": hub_id, "commit": commit,
                                    "files": [asdict(f) for f in files]}, indent=2))
    return DownloadReport(hub_id, str(dest), commit, len(files), total, state["fetched"], present,
                          time.perf_counter() - started)


def _manifest_files(manifest: Path) -> dict[str, RemoteFile]:
    try:
        return {f["name"]: RemoteFile(**f) for f in json.loads(manifest.read_text())["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _is_current(final: Path, remote: RemoteFile, recorded: RemoteFile | None) -> bool:
    """True when ``final`` already holds this version of the file (recorded hash, or re-hashed)."""
    if not final.is_file() or final.stat().st_size != remote.size:
        return False
    if recorded is not None:
        return recorded == remote
    return _hash_problem(final, remote) is None


def _fetch(url: str, part: Path, remote: RemoteFile, state: dict, report: Callable[[str], None],
           cancel: threading.Event | None, retries: int) -> None:
    """Append the missing bytes of ``remote`` to ``part`` with Range requests, retrying transient errors."""
    hub = _hub()
    import httpx2

    @retry(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(max(1, retries)),
           wait=wait_exponential(multiplier=0.5, max=10), reraise=True)
    def attempt() -> None:
        have = part.stat().st_size if part.is_file() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have == remote.size:
            return
        meta = hub.get_hf_file_metadata(url, retry_on_errors=True)
        if meta.size is not None and meta.size != remote.size:
            raise DownloadError(f"{remote.name} changed on the hub while downloading; run the download again.")
        location = meta.location or url
        headers = hub.utils.build_hf_headers() if _same_host(location, url) else {}  # no token to a CDN
        headers.update({"Range": f"bytes={have}-", "Accept-Encoding": "identity"})
        try:
            with hub.get_session().stream("GET", location, headers=headers,
                                          follow_redirects=True, timeout=30) as response:
                if response.status_code in (429,) or response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code}")
                if response.status_code == 200 and have:
                    have = 0  # the server ignored Range: start over
                elif response.status_code not in (200, 206):
                    raise DownloadError(f"The hub answered HTTP {response.status_code} for {remote.name}.")
                with part.open("r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    for chunk in response.iter_bytes():  # as received: a dropped connection loses nothing
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelledError(
                                "Download cancelled; the next `docmind model download` resumes it.")
                        out.write(chunk)
                        state["done"] += len(chunk)
                        state["fetched"] += len(chunk)
                        report(remote.name)
        except httpx2.TransportError as error:
            log.warning("download of %s interrupted (%s); resuming", remote.name, error)
            raise _Transient(str(error)) from error
        if part.stat().st_size < remote.size:
            raise _Transient(f"connection closed at {part.stat().st_size} of {remote.size} bytes")

    try:
        attempt()
    except _Transient as error:
        raise DownloadError(f"Downloading {remote.name} failed after {retries} tries ({error}). "
                            "Run `docmind model download` again: it resumes where it stopped.") from error


def _same_host(a: str, b: str) -> bool:
    from urllib.parse import urlparse

    return urlparse(a).netloc == urlparse(b).netloc


def _hash_problem(path: Path, remote: RemoteFile) -> str | None:
    size = path.stat().st_size
    if size != remote.size:
        return f"{size} of {remote.size} bytes"
    if remote.sha256:
        digest = hashlib.sha256()
    elif remote.blob_id:
        digest = hashlib.sha1(f"blob {size}\0".encode())
    else:
        return None
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    expected = remote.sha256 or remote.blob_id
    return None if digest.hexdigest() == expected else "checksum mismatch"


def verify_model(name: str, path: Path, *, repair: bool = True) -> VerifyReport:
    """Re-check every file against the manifest (or, for a local model, its safetensors headers).

    With ``repair``, a truncated file becomes ``.part`` again (the next download resumes it) and a
    corrupted one is deleted (the next download fetches it again).
    """
    report = VerifyReport(model=name, path=str(path), ok=True)
    manifest = path / MANIFEST
    if not path.is_dir():
        report.ok = False
        report.files.append(FileCheck("", False, f"{path} does not exist; run `docmind model download`"))
        return report
    if not manifest.is_file():
        for shard in sorted(path.glob("*.safetensors")) or [path / "model.safetensors"]:
            problem = safetensors_problem(shard) if shard.is_file() else "missing"
            report.files.append(FileCheck(shard.name, problem is None, problem))
        if not (path / "config.json").is_file():
            report.files.append(FileCheck("config.json", False, "missing"))
        report.ok = all(f.ok for f in report.files)
        return report
    for entry in json.loads(manifest.read_text())["files"]:
        remote = RemoteFile(**entry)
        file = path / remote.name
        if not file.is_file():
            report.files.append(FileCheck(remote.name, False, "missing"))
            continue
        problem = _hash_problem(file, remote)
        if problem and repair:
            if file.stat().st_size < remote.size:
                os.replace(file, _part(path, remote))
                problem += "; kept as .part, the next download resumes it"
            else:
                file.unlink()
                problem += "; deleted, the next download fetches it again"
        report.files.append(FileCheck(remote.name, problem is None, problem))
    report.ok = all(f.ok for f in report.files)
    return report

