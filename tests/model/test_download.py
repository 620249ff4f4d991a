"""First-run download against a local fake hub: resume across runs, retries, disk check, cancel, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.model.fake_hub import FakeHub

REPO = "test-org/tiny-qwen3"
WEIGHTS = "model.safetensors"

# Runs download_model in a fresh interpreter: huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE at import.
SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from pathlib import Path
    from docmind.model.download import download_model
    from docmind.model.errors import ModelError
    args = json.loads(sys.argv[1])
    cancel = threading.Event()
    seen = []
    def progress(p):
        seen.append([p.bytes_done, p.bytes_total, p.speed_bytes_per_s, p.eta_seconds])
        if args.get("cancel_after_bytes") is not None and p.bytes_done >= args["cancel_after_bytes"]:
            cancel.set()
    try:
        report = download_model(args["repo"], Path(args["dest"]), progress=progress, cancel=cancel,
                                retries=args.get("retries", 3), lock_wait=args.get("lock_wait", 600))
        print(json.dumps({"ok": True, "report": vars(report), "progress": seen}))
    except ModelError as error:
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error), "progress": seen}))
""")


def _env(hub: FakeHub, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(data_dir / "hf-home"),
               DOCMIND_DATA_DIR=str(data_dir), DOCMIND_MODEL=REPO, NO_PROXY="127.0.0.1,localhost")
    env.pop("DOCMIND_MODEL_PATH", None)
    return env


def _download(hub: FakeHub, data_dir: Path, **args: object) -> dict:
    payload = json.dumps({"repo": REPO, "dest": str(data_dir / "models" / "test-org--tiny-qwen3"), **args})
    out = subprocess.run([sys.executable, "-c", SCRIPT, payload], env=_env(hub, data_dir), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _cli(hub: FakeHub, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docmind", "model", *args], env=_env(hub, data_dir),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def hub(tiny_model_dir: Path):
    with FakeHub(REPO, tiny_model_dir) as server:
        yield server


def test_cli_download_then_verify_and_status(hub: FakeHub, data_dir: Path, tiny_model_dir: Path) -> None:
    out = _cli(hub, data_dir, "download", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    dest = Path(report["path"])
    assert report["bytes_total"] == sum(len(b) for b in hub.files.values())
    assert report["bytes_resumed"] == 0 and report["commit"] == "0123456789abcdef0123456789abcdef01234567"
    for name, data in hub.files.items():
        assert (dest / name).read_bytes() == data
    assert not list(dest.glob("*.part"))
    assert ("GET", f"/api/models/{REPO}/revision/main?blobs=true", None) in hub.requests

    verify = _cli(hub, data_dir, "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
    status = json.loads(_cli(hub, data_dir, "status", "--json").stdout)
    assert status["state"] == "ready" and status["model"] == REPO

    again = json.loads(_cli(hub, data_dir, "download", "--json").stdout)
    assert again["bytes_downloaded"] == 0, "a complete model is not fetched again"


def test_dropped_connection_resumes_on_next_run(hub: FakeHub, data_dir: Path) -> None:
    size = len(hub.files[WEIGHTS])
    hub.cut_after = int(size * 0.6)
    first = _download(hub, data_dir, retries=1)
    assert first["ok"] is False and first["error"] == "DownloadError"
    assert "resumes" in first["message"]
    dest = data_dir / "models" / "test-org--tiny-qwen3"
    assert (dest / f"{WEIGHTS}.part").stat().st_size == hub.cut_after
    assert not (dest / "docmind-manifest.json").exists()

    cut, hub.cut_after = hub.cut_after, None
    requests_before = len(hub.requests)
    second = _download(hub, data_dir)
    assert second["ok"] is True, second
    resumed = [r for method, path, r in hub.requests[requests_before:] if method == "GET" and path.endswith(WEIGHTS)]
    assert resumed == [f"bytes={cut}-"], "the next run asked only for the bytes after the partial file"
    refetched = hub.sent[WEIGHTS] - size
    assert refetched < 0.10 * size, f"re-downloaded {refetched} bytes of {size}"
    assert second["report"]["bytes_resumed"] >= cut
    assert (dest / WEIGHTS).read_bytes() == hub.files[WEIGHTS]
    assert (dest / "docmind-manifest.json").is_file()


def test_dropped_connection_retried_within_one_run(hub: FakeHub, data_dir: Path) -> None:
    size = len(hub.files[WEIGHTS])
    hub.cut_after = size // 2 + 1
    result = _download(hub, data_dir, retries=3)
    assert result["ok"] is True, result
    assert hub.sent[WEIGHTS] == size, "each retry continued where the dropped connection stopped"
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(WEIGHTS)]
    assert ranges == ["bytes=0-", f"bytes={size // 2 + 1}-"]


def test_progress_reports_bytes_speed_and_eta(hub: FakeHub, data_dir: Path) -> None:
    result = _download(hub, data_dir)
    progress = result["progress"]
    total = sum(len(b) for b in hub.files.values())
    assert progress and all(p[1] == total for p in progress)
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert progress[-1][0] == total and progress[-1][2] > 0 and progress[-1][3] == 0


def test_cancel_keeps_partial_file_for_resume(hub: FakeHub, data_dir: Path) -> None:
    size = len(hub.files[WEIGHTS])
    result = _download(hub, data_dir, cancel_after_bytes=1)
    assert result["ok"] is False and result["error"] == "DownloadCancelledError"
    dest = data_dir / "models" / "test-org--tiny-qwen3"
    assert not (dest / "docmind-manifest.json").exists()
    resumed = _download(hub, data_dir)
    assert resumed["ok"] is True
    assert hub.sent[WEIGHTS] <= size * 2
    assert (dest / WEIGHTS).read_bytes() == hub.files[WEIGHTS]


def test_disk_too_small_is_refused_before_downloading(hub: FakeHub, data_dir: Path) -> None:
    hub.fake_sizes[WEIGHTS] = 10**16  # 10 PB: no disk has that free
    out = _cli(hub, data_dir, "download")
    assert out.returncode == 1
    message = out.stderr.strip().splitlines()[-1]
    assert "Not enough disk space" in message and "needs" in message and "free" in message and "GB" in message
    assert sum(hub.sent.values()) == 0
    assert not any("/resolve/" in path for _, path, _ in hub.requests)


def test_verify_finds_damage_and_download_repairs_it(hub: FakeHub, data_dir: Path) -> None:
    assert _cli(hub, data_dir, "download").returncode == 0
    dest = data_dir / "models" / "test-org--tiny-qwen3"
    weights = dest / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    verify = _cli(hub, data_dir, "verify", "--json")
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    bad = [f for f in report["files"] if not f["ok"]]
    assert [f["name"] for f in bad] == [WEIGHTS] and "checksum mismatch" in bad[0]["problem"]
    status = json.loads(_cli(hub, data_dir, "status", "--json").stdout)
    assert status["state"] != "ready" and "docmind model download" in status["message"]

    sent = sum(hub.sent.values())
    assert _cli(hub, data_dir, "download").returncode == 0
    assert sum(hub.sent.values()) - sent == len(hub.files[WEIGHTS]), "only the damaged file is fetched again"
    assert _cli(hub, data_dir, "verify").returncode == 0


def test_truncated_file_is_resumed_not_refetched(hub: FakeHub, data_dir: Path) -> None:
    assert _cli(hub, data_dir, "download").returncode == 0
    weights = data_dir / "models" / "test-org--tiny-qwen3" / WEIGHTS
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size - 1000)
    verify = json.loads(_cli(hub, data_dir, "verify", "--json").stdout)
    assert not verify["ok"]
    assert any(".part" in (f["problem"] or "") for f in verify["files"])
    sent = hub.sent[WEIGHTS]
    assert _cli(hub, data_dir, "download").returncode == 0
    assert hub.sent[WEIGHTS] - sent == 1000
    assert weights.read_bytes() == hub.files[WEIGHTS]


def test_offline_mode_refuses_with_a_clear_message(hub: FakeHub, data_dir: Path) -> None:
    env = _env(hub, data_dir) | {"HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "docmind", "model", "download"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "HF_HUB_OFFLINE" in out.stderr


def test_downloaded_model_loads_with_the_hub_gone(tiny_model_dir: Path, data_dir: Path) -> None:
    with FakeHub(REPO, tiny_model_dir) as server:
        assert _cli(server, data_dir, "download").returncode == 0
        env = _env(server, data_dir)  # HF_ENDPOINT now points at a closed port; HF_HUB_OFFLINE=0
    code = ("from docmind.config import load_settings; from docmind.model.loading import load_model; "
            "m = load_model(load_settings()); print(m.choice.name, m.choice.local)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [REPO, "False"]


def test_a_changed_file_on_the_hub_is_fetched_again(hub: FakeHub, data_dir: Path) -> None:
    assert _cli(hub, data_dir, "download").returncode == 0
    original = hub.files["generation_config.json"]  # a new revision: same size, other content
    hub.files["generation_config.json"] = original[:-1] + (b" " if original[-1:] != b" " else b"\n")
    sent = dict(hub.sent)
    assert _cli(hub, data_dir, "download").returncode == 0
    assert hub.sent["generation_config.json"] > sent.get("generation_config.json", 0)
    assert hub.sent[WEIGHTS] == sent[WEIGHTS], "unchanged files are not fetched again"
    dest = data_dir / "models" / "test-org--tiny-qwen3"
    assert (dest / "generation_config.json").read_bytes() == hub.files["generation_config.json"]
    assert _cli(hub, data_dir, "verify").returncode == 0


def test_two_processes_downloading_the_same_model_take_turns(hub: FakeHub, data_dir: Path) -> None:
    hub.release.clear()  # the first download holds its first file until both processes are running
    first = subprocess.Popen([sys.executable, "-m", "docmind", "model", "download", "--json"],
                             env=_env(hub, data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert hub.file_gets.acquire(timeout=120), "the first download started fetching (it holds the lock)"
        second = subprocess.Popen([sys.executable, "-m", "docmind", "model", "download", "--json"],
                                  env=_env(hub, data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        waiting = ""
        for line in second.stderr:  # the second one says that it waits, while the first is held
            waiting += line
            if "already running" in line:
                break
        assert "A download of test-org/tiny-qwen3 is already running in another process" in waiting, waiting
        hub.release.set()
        out1, err1 = first.communicate(timeout=120)
        out2, err2 = second.communicate(timeout=120)
    finally:
        hub.release.set()
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    done_first, done_second = json.loads(out1), json.loads(out2)
    total = sum(len(b) for b in hub.files.values())
    assert done_first["bytes_downloaded"] == total
    assert done_second["bytes_downloaded"] == 0, "the second found every file done and verified"
    assert hub.sent[WEIGHTS] == len(hub.files[WEIGHTS]), "each file was fetched once"
    dest = Path(done_first["path"])
    assert not list(dest.glob("*.part"))
    verify = _cli(hub, data_dir, "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"] is True


def test_a_download_that_waits_too_long_for_another_gives_up_with_one_line(hub: FakeHub, data_dir: Path) -> None:
    from filelock import FileLock

    from docmind.model.download import download_lock_path

    dest = data_dir / "models" / "test-org--tiny-qwen3"
    dest.parent.mkdir(parents=True)
    with FileLock(download_lock_path(dest)):  # another process's download holds the model
        result = _download(hub, data_dir, lock_wait=1)
    assert result["ok"] is False and result["error"] == "DownloadError"
    assert result["message"].startswith("A download of test-org/tiny-qwen3 is already running in another process")
    assert "\n" not in result["message"]
    assert result["progress"] and all(p[0] == 0 for p in result["progress"]), "it reported the other's bytes"
    assert not any("/resolve/" in path for _, path, _ in hub.requests), "it fetched nothing"
    assert _download(hub, data_dir)["ok"] is True, "once the lock is free, the download runs"
