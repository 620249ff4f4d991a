"""Helpers for ``build.spec``: what to leave out of the bundle, and assembling the single file."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

from payload import splice

# Paths (as placed in the bundle) that DocMind never uses at run time. Each was checked by building:
# the app still ingests, answers and serves without them (see ../shared/STACK.md).
EXCLUDED_PATTERNS = (
    "torch/test/*",
    "torch/bin/*",
    "*_test.so",
    "*_test.pyd",
    "libcudart*",
    "_tcl_data/*",
    "_tk_data/*",
    "tcl*/*",
    "tk*/*",
    "*/ffmpeg-core.wasm",
)


# Needed despite the patterns above: ``import torch`` checks that this helper exists.
KEPT = ("torch/bin/torch_shm_manager",)


def is_excluded(dest: str) -> bool:
    """True for a bundle entry that is not needed at run time."""
    dest = dest.replace(os.sep, "/")
    return dest not in KEPT and any(fnmatch.fnmatch(dest, pattern) for pattern in EXCLUDED_PATTERNS)


# Linux only: symbol tables the app never reads (libtorch_cpu.so: 434 -> 345 MB unpacked). Only this one:
# stripping every binary breaks auditwheel-patched ones ("ELF load command ... not page-aligned" in numpy.libs).
STRIPPED_ON_LINUX = ("torch/lib/libtorch_cpu.so",)


def strip_symbols(app_dir: Path) -> None:
    """Strip the symbol tables of ``STRIPPED_ON_LINUX`` in the app folder (skipped without binutils)."""
    tool = shutil.which("strip")
    if tool is None:
        print("strip (binutils) not found: libraries left unstripped, the app is ~90 MB bigger")
        return
    for name in STRIPPED_ON_LINUX:
        subprocess.run([tool, "--strip-unneeded", str(app_dir / "_internal" / name)], check=True)


def without_unneeded(toc):
    """The TOC (list of (dest, source, typecode)) minus the excluded entries."""
    return [entry for entry in toc if not is_excluded(entry[0])]


def folder_size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def largest_parts(folder: Path, top: int = 8) -> list[tuple[str, int]]:
    """The biggest top-level parts of the app folder (a package folder or a file), by bytes."""
    sizes: Counter[str] = Counter()
    internal = folder / "_internal"
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(internal if internal in path.parents else folder)
            sizes[rel.parts[0]] += path.stat().st_size
    return sizes.most_common(top)


def _pack(app_dir: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path in sorted(app_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(app_dir)), recursive=False)


def assemble_single_file(stub: Path, app_dir: Path, version: str, output: Path, work: Path) -> str:
    """Build ``output`` from the stub and the app folder; returns the build id."""
    archive = work / "app-payload.tar.gz"
    _pack(app_dir, archive)
    digest = hashlib.sha256()
    with open(archive, "rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    build_id = f"{version}-{digest.hexdigest()[:12]}"
    splice(stub, archive, folder_size(app_dir), build_id, output)
    archive.unlink()
    return build_id


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()
