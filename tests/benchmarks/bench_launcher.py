"""Benchmark of the single-file launcher: artifact size and time to the first HTTP 200, against source.

Prints one JSON document. Needs the built ``dist/DocMind`` (``make package``; or set DOCMIND_BINARY).
  cold start:  a fresh HOME, so the first start unpacks the app into the cache, then serves
  warm start:  the same HOME again (already unpacked)
  source:      ``python -m docmind serve`` from this checkout's venv
  plain onefile (if built with DOCMIND_PLAIN_ONEFILE=1): PyInstaller's stock onefile, for comparison
Every run gets a fresh data dir, ``serve --no-browser`` on a free port, and is stopped after its first 200.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
sys.path.insert(0, str(ROOT))

from build_support import folder_size, largest_parts  # noqa: E402

from docmind.ui.launch_guard import available_port  # noqa: E402

BINARY = Path(os.environ.get("DOCMIND_BINARY", ROOT / "dist" / "DocMind")).resolve()
PLAIN_ONEFILE = BINARY.parent / "DocMind-plain-onefile"  # built with DOCMIND_PLAIN_ONEFILE=1 packaging/build.sh
WARM_RUNS = 2
START_TIMEOUT_S = 300


def time_to_first_200(command: list[str], env: dict[str, str], work: Path) -> dict:
    """Start ``command serve`` and return the seconds until its page answers 200 (plus unpack time if any)."""
    port = available_port("127.0.0.1", 0)
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    log_path = work / f"serve-{port}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*command, "serve", "--no-browser", "--port", str(port)],
            env={**env, "DOCMIND_DATA_DIR": str(data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        while time.perf_counter() - started < START_TIMEOUT_S:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited early:\n{log_path.read_text()}")
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{command} served nothing in {START_TIMEOUT_S} s")
        seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    unpacked = re.search(r"unpacked in ([\d.]+) s", log_path.read_text())
    return {"seconds_to_200": round(seconds, 2), "unpack_seconds": float(unpacked.group(1)) if unpacked else None}


def version_seconds(binary: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(binary), "--version"], env=env, check=True, capture_output=True)
    return round(time.perf_counter() - started, 2)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-launcher-") as work:  # ~1 GB unpacked: removed after
        print(json.dumps(measure(Path(work)), indent=2))


def measure(work: Path) -> dict:
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "DOCMIND_NO_DIALOG": "1"}
    base_env.pop("DOCMIND_DATA_DIR", None)
    source = [time_to_first_200([sys.executable, "-m", "docmind"], base_env, work) for _ in range(WARM_RUNS)]
    result: dict = {
        "source_seconds_to_200": [run["seconds_to_200"] for run in source],
        "source_median_s": round(statistics.median(run["seconds_to_200"] for run in source), 2),
        "machine": f"{os.cpu_count()} cores, shared with other work",
    }
    if not BINARY.is_file():
        result["single_file"] = {"error": f"{BINARY} is not built: run `make package` first"}
        return result
    env = {**base_env, "HOME": str(work / "home"), "XDG_CACHE_HOME": str(work / "home" / ".cache")}
    cold = time_to_first_200([str(BINARY)], env, work)
    warm = [time_to_first_200([str(BINARY)], env, work) for _ in range(WARM_RUNS)]
    runtime = next(p for p in (work / "home" / ".cache" / "DocMind" / "runtime").iterdir() if p.is_dir())
    result["single_file"] = {
        "path": str(BINARY),
        "size_mb": round(BINARY.stat().st_size / 1e6, 1),
        "unpacked_mb": round(folder_size(runtime) / 1e6, 1),
        "largest_parts_mb": {name: round(size / 1e6, 1) for name, size in largest_parts(runtime)},
        "cold_start_s_to_200": cold["seconds_to_200"],
        "cold_unpack_s": cold["unpack_seconds"],
        "warm_start_s_to_200": [run["seconds_to_200"] for run in warm],
        "warm_median_s": round(statistics.median(run["seconds_to_200"] for run in warm), 2),
        "version_warm_s": version_seconds(BINARY, env),
    }
    result["warm_vs_source"] = round(result["single_file"]["warm_median_s"] / result["source_median_s"], 2)
    if PLAIN_ONEFILE.is_file():  # PyInstaller's stock onefile extracts everything on every start
        plain = [time_to_first_200([str(PLAIN_ONEFILE)], env, work) for _ in range(WARM_RUNS)]
        result["plain_onefile"] = {
            "size_mb": round(PLAIN_ONEFILE.stat().st_size / 1e6, 1),
            "seconds_to_200_each_start": [run["seconds_to_200"] for run in plain],
            "median_s": round(statistics.median(run["seconds_to_200"] for run in plain), 2),
        }
    return result


if __name__ == "__main__":
    main()
