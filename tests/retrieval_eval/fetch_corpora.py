"""Fetch the three public corpora of the retrieval evaluation, pinned by version and sha256.

- ``sqlite``: HTML reference pages of SQLite 3.40.1, from the Debian package ``sqlite3-doc``.
- ``gnuplot``: the gnuplot 5.4 manual, one 311-page PDF, from the Debian package ``gnuplot-doc``.
- ``click``: the reStructuredText documentation of Click 8.1.7, from its PyPI sdist.

Run: ``python tests/retrieval_eval/fetch_corpora.py [DEST]`` (default: ``$DOCMIND_EVAL_CORPORA`` or
``~/.cache/docmind-retrieval-eval``). Prints the corpus folder. Already fetched files are kept; a
download whose sha256 differs is refused, so the questions always match the text they were written on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DebianDoc:
    package: str
    version: str
    sha256: str
    folder: str  # inside the package
    files: tuple[str, ...]


@dataclass(frozen=True)
class PyPISdist:
    name: str
    version: str
    sha256: str
    folder: str  # inside the sdist
    suffix: str


SQLITE_PAGES = (
    "lang_createtable lang_createindex lang_vacuum wal datatype3 autoinc foreignkeys lang_transaction limits "
    "nulls quirks rowidtable withoutrowid lang_upsert lang_returning lang_altertable lang_attach lang_analyze "
    "partialindex expridx gencol stricttables backup lang_savepoint inmemorydb tempfiles lang_datefunc faq "
    "whentouse lang_conflict lang_droptable lang_explain lang_with lang_corefunc lang_mathfunc lang_aggfunc "
    "isolation lang_delete lang_insert lang_update lang_createview lang_createtrigger"
).split()

CORPORA: dict[str, DebianDoc | PyPISdist] = {
    "sqlite": DebianDoc(
        "sqlite3-doc", "3.40.1-2+deb12u2", "466e30d7066e2641fa13e56bc662a2ad521b8cc9c17dde9c9dac3d4f105e32f2",
        "usr/share/doc/sqlite3", tuple(f"{page}.html" for page in SQLITE_PAGES),
    ),
    "gnuplot": DebianDoc(
        "gnuplot-doc", "5.4.4+dfsg1-2", "73fe1816a296594cf6a1d38528f8d740fd650f57a2cb62e029f7920fcd5b31f0",
        "usr/share/doc/gnuplot", ("gnuplot.pdf",),
    ),
    "click": PyPISdist(
        "click", "8.1.7", "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de", "click-8.1.7/docs", ".rst",
    ),
}


def default_dest() -> Path:
    return Path(os.environ.get("DOCMIND_EVAL_CORPORA", Path.home() / ".cache" / "docmind-retrieval-eval"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(path: Path, expected: str) -> Path:
    actual = _sha256(path)
    if actual != expected:
        raise SystemExit(f"{path.name}: sha256 {actual} is not the pinned {expected}; refusing it")
    return path


def _fetch_debian(doc: DebianDoc, work: Path) -> Path:
    subprocess.run(["apt-get", "download", f"{doc.package}={doc.version}"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    deb = _checked(next(work.glob(f"{doc.package}_*.deb")), doc.sha256)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
    return work / "x" / doc.folder


def _fetch_sdist(sdist: PyPISdist, work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"{sdist.name}=={sdist.version}", "-d", str(work)], check=True)
    archive = _checked(next(work.glob(f"{sdist.name}-{sdist.version}.tar.gz")), sdist.sha256)
    with tarfile.open(archive) as tar:
        tar.extractall(work / "x", filter="data")
    return work / "x" / sdist.folder


def fetch(name: str, dest: Path) -> Path:
    """The folder holding corpus ``name``, fetched into ``dest/name`` unless already there."""
    target = dest / name
    if (target / ".complete").is_file():
        return target
    spec = CORPORA[name]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if isinstance(spec, DebianDoc):
            folder = _fetch_debian(spec, work)
            files = [folder / file for file in spec.files]
        else:
            folder = _fetch_sdist(spec, work)
            files = sorted(folder.glob(f"*{spec.suffix}"))
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, target / file.name)
    (target / ".complete").write_text("ok\n")
    return target


def fetch_all(dest: Path | None = None) -> Path:
    """Fetch every corpus into ``dest`` (default ``default_dest()``) and return it."""
    dest = dest or default_dest()
    for name in CORPORA:
        fetch(name, dest)
    return dest


if __name__ == "__main__":
    print(fetch_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
