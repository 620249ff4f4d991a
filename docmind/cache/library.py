"""Where uploaded files are kept: ``<data dir>/library/<content hash>/<the user's file name>``.

An upload is copied under a temporary name, flushed to disk, then renamed into place, so a reader
(the ingest worker, a crash) never sees half a file. The folder named after the content hash makes
every stored name unique while the file keeps the name the user gave it: two different ``notes.txt``
live side by side, and the same content uploaded twice is stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HASH_FOLDER_LENGTH = 16  # hex digits of the SHA-256 that name an upload's folder (64 bits)
_PARTIAL_PREFIX = ".upload-"
_PARTIAL_SUFFIX = ".part"


@dataclass(frozen=True)
class StoredUpload:
    """An upload kept in the library folder."""

    path: Path
    """The stored copy, the document's source once ingested."""
    name: str
    """The file name the user uploaded (the stored copy may carry an earlier upload's name)."""
    sha256: str
    copied: bool
    """False when the same content was already stored: nothing was written."""


def library_dir(data_dir: Path) -> Path:
    """The folder DocMind keeps uploaded files in."""
    return data_dir / "library"


def store_upload(source: str | Path, library: Path, name: str | None = None) -> StoredUpload:
    """Copy ``source`` into ``library`` under ``name`` (default: its own name), unless its content is there.

    Raises ``OSError`` when the file cannot be read or the library cannot be written; nothing is left behind then.
    """
    source = Path(source)
    name = Path(name or source.name).name
    if name in ("", ".", ".."):
        name = "upload"
    library.mkdir(parents=True, exist_ok=True)
    library = library.resolve()
    handle, partial = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, suffix=_PARTIAL_SUFFIX, dir=library)
    try:
        digest = _copy_hashing(source, handle)
        folder = library / digest[:HASH_FOLDER_LENGTH]
        existing = _stored_file(folder)
        if existing is not None:
            return StoredUpload(existing, name, digest, copied=False)
        folder.mkdir(exist_ok=True)
        target = folder / name
        os.replace(partial, target)
        _sync_folder(folder)
        return StoredUpload(target, name, digest, copied=True)
    finally:
        Path(partial).unlink(missing_ok=True)


def remove_partial_uploads(library: Path, older_than_s: float = 3600) -> int:
    """Delete temporary copies left by a copy that was killed midway; return how many."""
    if not library.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for partial in library.glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):  # gone meanwhile
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
                removed += 1
    if removed:
        log.info("removed %d unfinished upload copies from %s", removed, library)
    return removed


def owns(path: str | Path, library: Path) -> bool:
    """True when ``path`` is a copy DocMind keeps in ``library`` (so removing its document may delete it)."""
    return Path(path).resolve().is_relative_to(library.resolve())


def discard_upload(path: str | Path, library: Path) -> bool:
    """Delete a stored copy (and its hash folder once empty); False when ``path`` is not DocMind's to delete."""
    path = Path(path)
    if not owns(path, library):
        return False
    folder = path.resolve().parent
    path.unlink(missing_ok=True)
    if folder != library.resolve():
        with contextlib.suppress(OSError):  # still holds another file: keep it
            folder.rmdir()
    return True


def _copy_hashing(source: Path, handle: int) -> str:
    """Copy ``source`` into the open temporary file ``handle`` (then flushed to disk); return its SHA-256."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, os.fdopen(handle, "wb") as writer:
        while block := reader.read(1 << 20):
            digest.update(block)
            writer.write(block)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def _stored_file(folder: Path) -> Path | None:
    """The complete file already stored in a hash folder, if any."""
    if not folder.is_dir():
        return None
    return next((entry for entry in sorted(folder.iterdir()) if entry.is_file()), None)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX; Windows has no directory handles to flush)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
