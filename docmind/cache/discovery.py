"""Find the files to ingest under the paths a user gave: folders recurse, hidden and unsupported files are skipped."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from docmind.cache.readers import is_supported

log = logging.getLogger(__name__)


@dataclass
class FileFailure:
    """A file (or given path) that could not be ingested, with a one-line reason."""

    path: str
    error: str


@dataclass
class Discovery:
    """The files found, the paths that failed before reading, and how many files were skipped."""

    files: list[Path] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    skipped: int = 0


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$")


def _resolve(path: Path, discovery: Discovery) -> Path | None:
    """The absolute real path of ``path``, or None after recording why it cannot be used."""
    try:
        return path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        discovery.failed.append(FileFailure(str(path.absolute()), "symlink loop: the link points back to itself"))
    except FileNotFoundError:
        reason = "broken symlink: its target does not exist" if path.is_symlink() else "no such file or folder"
        discovery.failed.append(FileFailure(str(path.absolute()), reason))
    except OSError as error:
        if error.errno == errno.ELOOP:
            reason = "symlink loop: the link points back to itself"
        else:
            reason = f"cannot open: {error.strerror or error}"
        discovery.failed.append(FileFailure(str(path.absolute()), reason))
    return None


def discover(paths: list[str | Path]) -> Discovery:
    """Expand ``paths`` into supported, visible files (deduplicated, in a stable order)."""
    discovery = Discovery()
    seen: set[Path] = set()

    def add(path: Path, explicit: bool) -> None:
        real = _resolve(path, discovery)
        if real is None or real in seen:
            return
        if real.is_dir():
            walk(real)
            return
        if not is_supported(real):
            if explicit:
                discovery.failed.append(FileFailure(str(real), f"unsupported file type {real.suffix or '(none)'!r}"))
            else:
                discovery.skipped += 1
            return
        seen.add(real)
        discovery.files.append(real)

    def walk(folder: Path) -> None:
        def on_error(error: OSError) -> None:
            discovery.failed.append(FileFailure(str(error.filename), f"cannot list folder: {error.strerror}"))

        for root, dirs, files in os.walk(folder, onerror=on_error):
            hidden_dirs = [name for name in dirs if _is_hidden(name)]
            dirs[:] = sorted(name for name in dirs if not _is_hidden(name))
            if hidden_dirs:
                log.info("skipping hidden folders %s in %s", hidden_dirs, root)
            for name in sorted(files):
                if _is_hidden(name):
                    discovery.skipped += 1
                    continue
                add(Path(root) / name, explicit=False)

    for path in paths:
        add(Path(path).expanduser(), explicit=True)
    return discovery
