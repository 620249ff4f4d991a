"""Soak benchmark: a real ``docmind serve`` under mixed load and injected faults. Prints one JSON document.

For ``--minutes`` (default 20; ``--quick`` = 2) it runs at once, against one server with the tiny test model:
- 5 concurrent ``gradio_client`` chat clients (a new chat every few turns);
- a CLI ingest loop (``docmind ingest``) on the same data dir, editing and adding files between runs;
- a chat-admin loop: a chat is created, renamed, exported and deleted through the scripting API;
- a ``/sessions`` poller, timing every call;
- a model switch to a second tiny model of another shape, and back, through the app's own switch;
- an injected engine fault every ``--fault-every`` seconds (NaN logits for one request).

It reports turns completed and failed (only the injected ones may fail), the longest wait, the p99 of
``/sessions``, the event loop's lag (measured inside the server), the server's RSS after warm-up and at the
end, its descriptors and threads at start and end, SQLite's ``integrity_check``, and whether every
acknowledged turn is stored. The server is ``docmind.ui.serve`` in a process of its own, started by this
file (``--serve``) so that it can add three benchmark-only routes: the lag probe, the fault trigger and
the model switch.
Usage: .venv/bin/python tests/benchmarks/bench_soak.py [--minutes M | --quick] [--fault-every S]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections import Counter
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CLIENTS = 5
TURNS_PER_CHAT = 6
SERVER_LOG = ROOT / "tests" / "artifacts" / "soak-server.log"
"""The server's log of the last run (the run's own temp folder is removed)."""
FAULT_MARK = "SOAK-FAULT"
"""A question holding this text is the one whose generation the armed fault poisons."""
WORDS = ("warranty repairs returns invoice shipping battery charger screen keyboard manual support "
         "refund replacement serial model firmware update safety cleaning storage travel").split()


# ---------------------------------------------------------------- the server side (runs with --serve)

def serve(port: int) -> None:
    """Start the app as ``docmind serve`` does, add the benchmark routes, and run until killed."""
    import asyncio

    from fastapi.responses import JSONResponse

    from docmind.config import load_settings
    from docmind.ui import serve as serve_app

    app = serve_app(load_settings(), port=port, open_browser=False)
    lags: list[float] = []

    async def monitor() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.02)
            lags.append(time.perf_counter() - started - 0.02)

    async def lag() -> JSONResponse:
        if not hasattr(lag, "task"):
            loop = asyncio.get_running_loop()
            lag.task = loop.create_task(monitor())
            if os.environ.get("SOAK_ASYNCIO_DEBUG"):  # names each callback that holds the loop > 0.1 s
                logging.basicConfig(level=logging.WARNING)
                loop.set_debug(True)
                loop.slow_callback_duration = 0.1
        ordered = sorted(lags) or [0.0]
        return JSONResponse({"samples": len(lags), "max_ms": round(ordered[-1] * 1000, 1),
                             "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1)})

    def fault() -> JSONResponse:
        """Poison (NaN) the logits of every request whose prompt holds FAULT_MARK, through the engine's test hook."""
        from docmind.model.runtime import get_runtime

        engine = get_runtime(app.context.model.settings).engine
        marked: dict[int, bool] = {}

        def poison(handles: list, logits: object) -> None:
            for row, handle in enumerate(handles):
                if handle.id not in marked:
                    marked[handle.id] = FAULT_MARK in engine.tokenizer.decode(handle.prompt_ids)
                if marked[handle.id]:
                    logits[row] = float("nan")
                    engine.on_logits = None  # one fault per arming

        engine.on_logits = poison
        return JSONResponse({"armed": True})

    def switch(path: str) -> JSONResponse:
        app.context.switch_settings(load_settings(model_path=path))
        return JSONResponse({"switching_to": path})

    def status() -> JSONResponse:
        state = app.context.model.status
        return JSONResponse({"phase": state.phase.value, "name": state.name})

    routes = app.demo.app.router.routes
    for path, handler, methods in (("/soak/lag", lag, ["GET"]), ("/soak/fault", fault, ["POST"]),
                                   ("/soak/switch", switch, ["POST"]), ("/soak/status", status, ["GET"])):
        app.demo.app.add_api_route(path, handler, methods=methods)
        routes.insert(0, routes.pop())  # ahead of Gradio's catch-all routes
    print(f"running at {app.url}", flush=True)
    threading.Event().wait()


# ---------------------------------------------------------------- the load side

@dataclass
class Tally:
    """What the load threads saw; every list is appended to from several threads (list.append is atomic)."""

    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (session, question) of finished turns
    failed: list[str] = field(default_factory=list)
    failed_injected: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # longest gap between two streamed updates, per turn
    sessions_ms: list[float] = field(default_factory=list)
    admin_errors: list[str] = field(default_factory=list)
    ingests: list[dict] = field(default_factory=list)
    faults_armed: int = 0
    switches: list[dict] = field(default_factory=list)


def _http(url: str, method: str = "GET", timeout: float = 30) -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _question(rng: random.Random, fault: bool = False) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(6))
    return f"{FAULT_MARK} " * fault + f"What do my documents say about {words}?"


def chat_client(url: str, index: int, deadline: float, tally: Tally, fault_due: threading.Event) -> None:
    """Ask questions until the deadline; a chat lasts TURNS_PER_CHAT turns. Client 0 carries the faults."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    rng = random.Random(index)
    session, turns = "", 0
    while time.monotonic() < deadline:
        injected = index == 0 and fault_due.is_set()
        if injected:
            fault_due.clear()
            _http(url + "soak/fault", "POST")
            tally.faults_armed += 1
        question = _question(rng, fault=injected)
        last, longest, final = time.perf_counter(), 0.0, None
        try:
            for final in client.submit(question, session, True, api_name="/chat"):
                now = time.perf_counter()
                longest, last = max(longest, now - last), now
        except Exception as error:  # noqa: BLE001 - counted as a failed turn
            final = {"error": f"{type(error).__name__}: {error}", "session": session}
        tally.waits.append(longest)
        if final and final.get("done") and not final.get("error"):
            session = final["session"]
            tally.acknowledged.append((session, question))
        else:
            (tally.failed_injected if injected else tally.failed).append(str((final or {}).get("error")))
            session = (final or {}).get("session") or session
        turns += 1
        if injected or turns % TURNS_PER_CHAT == 0:
            session = ""  # a fault-marked question must not reach later prompts through the chat's history


def sessions_poller(url: str, deadline: float, tally: Tally) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    while time.monotonic() < deadline:
        started = time.perf_counter()
        client.predict("", api_name="/sessions")
        tally.sessions_ms.append((time.perf_counter() - started) * 1000)
        time.sleep(0.5)


def chat_admin(url: str, deadline: float, tally: Tally) -> None:
    """Create a chat, rename it, export it as Markdown and JSON, delete it; again every few seconds."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    rng = random.Random(99)
    while time.monotonic() < deadline:
        try:
            final = None
            for final in client.submit(_question(rng), "", False, api_name="/chat"):
                pass
            sid = final["session"]
            client.predict(sid, f"Soak chat {rng.random():.4f}", api_name="/rename_session")
            for style in ("md", "json"):
                client.predict(sid, style, api_name="/export_session")
            client.predict(sid, api_name="/delete_session")
        except Exception as error:  # noqa: BLE001 - reported
            tally.admin_errors.append(f"{type(error).__name__}: {error}")
        time.sleep(3)


def ingest_loop(env: dict[str, str], corpus: Path, deadline: float, tally: Tally) -> None:
    """``docmind ingest`` over the corpus, with one file edited and, every third run, one added."""
    rng = random.Random(7)
    run = 0
    while time.monotonic() < deadline:
        files = sorted(corpus.glob("*.txt"))
        with rng.choice(files).open("a") as handle:
            handle.write(f"Note {run}: the {rng.choice(WORDS)} policy changed on day {run}.\n")
        if run % 3 == 0:
            (corpus / f"added-{run}.txt").write_text(_document(rng, run))
        proc = subprocess.run([sys.executable, "-m", "docmind", "ingest", str(corpus), "--json"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=600)
        tally.ingests.append(json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-300:]})
        run += 1
        time.sleep(5)


def _document(rng: random.Random, index: int) -> str:
    sentences = [f"Section {index}.{n}: the {rng.choice(WORDS)} of the {rng.choice(WORDS)} is covered by "
                 f"the {rng.choice(WORDS)} rule number {rng.randrange(1000)}." for n in range(40)]
    return "\n".join(sentences) + "\n"


def _server_sample(pid: int) -> dict:
    import psutil

    process = psutil.Process(pid)
    return {"rss_mb": round(process.memory_info().rss / 1e6, 1), "fds": process.num_fds(),
            "threads": process.num_threads()}


def _wait_ready(url: str, want: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _http(url + "soak/status")
        if state["phase"] == "ready" and state["name"] == want:
            return state
        if state["phase"] == "failed":
            raise RuntimeError(f"model failed to load: {state}")
        time.sleep(0.2)
    raise RuntimeError(f"model {want} not ready after {timeout} s")


def _stored_check(db: Path, acknowledged: list[tuple[str, str]]) -> dict:
    """Every acknowledged turn has its question and a finished answer after it in the database."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    lost = 0
    for session, question in acknowledged:
        row = connection.execute(
            "SELECT id FROM messages WHERE session_id = ? AND role = 'user' AND content = ?",
            (session, question)).fetchone()
        answer = row and connection.execute(
            "SELECT 1 FROM messages WHERE session_id = ? AND role = 'assistant' AND id > ?",
            (session, row[0])).fetchone()
        lost += not answer
    messages = connection.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    connection.close()
    return {"integrity": integrity, "acknowledged_turns": len(acknowledged), "lost_turns": lost,
            "messages_stored": messages}


def run(minutes: float, fault_every: float) -> dict:
    from docmind.ui.launch_guard import available_port
    from tests.fixtures.server import wait_for_url
    from tests.fixtures.tiny_model import build_tiny_qwen3

    work = Path(tempfile.mkdtemp(prefix="docmind-soak-"))
    model_a = build_tiny_qwen3(work / "model-a")
    model_b = build_tiny_qwen3(work / "model-b", hidden_size=96, num_hidden_layers=3)
    corpus = work / "corpus"
    corpus.mkdir()
    rng = random.Random(1)
    for index in range(12):
        (corpus / f"doc-{index}.txt").write_text(_document(rng, index))
    data = work / "data"
    data.mkdir()
    env = {**os.environ, "DOCMIND_DATA_DIR": str(data), "DOCMIND_MODEL_PATH": str(model_a), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, "-m", "docmind", "ingest", str(corpus), "--json"], cwd=ROOT, env=env,
                   capture_output=True, check=True)
    port = available_port("127.0.0.1", 0)
    log_path = work / "server.log"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=ROOT, env=env,
                              stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    try:
        url = wait_for_url(server, log_path, 120)
        _http(url + "soak/lag")
        _wait_ready(url, str(model_a))
        return _load_phase(url, server.pid, env, corpus, data, model_a, model_b, minutes, fault_every)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, SERVER_LOG)
        shutil.rmtree(work, ignore_errors=True)


def _load_phase(url: str, pid: int, env: dict[str, str], corpus: Path, data: Path, model_a: Path, model_b: Path,
                minutes: float, fault_every: float) -> dict:
    tally = Tally()
    started = time.monotonic()
    deadline = started + minutes * 60
    fault_due = threading.Event()
    start_sample = _server_sample(pid)
    threads = [threading.Thread(target=chat_client, args=(url, i, deadline, tally, fault_due)) for i in range(CLIENTS)]
    threads += [threading.Thread(target=sessions_poller, args=(url, deadline, tally)),
                threading.Thread(target=chat_admin, args=(url, deadline, tally)),
                threading.Thread(target=ingest_loop, args=(env, corpus, deadline, tally))]
    for thread in threads:
        thread.start()
    warm_at = started + min(300, minutes * 60 / 4)
    switch_at = [started + minutes * 60 / 3, started + minutes * 60 * 2 / 3]
    next_fault = started + fault_every / 2
    warm_sample = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if warm_sample is None and now >= warm_at:
            warm_sample = _server_sample(pid)
        if switch_at and now >= switch_at[0]:
            switch_at.pop(0)
            target = model_b if len(switch_at) == 1 else model_a
            began = time.perf_counter()
            _http(f"{url}soak/switch?path={target}", "POST")
            _wait_ready(url, str(target))
            tally.switches.append({"to": target.name, "seconds": round(time.perf_counter() - began, 2)})
        if now >= next_fault:
            fault_due.set()
            next_fault += fault_every
        time.sleep(0.5)
    for thread in threads:
        thread.join(600)
    end_sample = _server_sample(pid)
    lag = _http(url + "soak/lag")
    stored = _stored_check(data / "docmind.db", tally.acknowledged)
    growth = (end_sample["rss_mb"] - warm_sample["rss_mb"]) / warm_sample["rss_mb"] if warm_sample else None
    sessions = sorted(tally.sessions_ms)
    report = {
        "minutes": minutes,
        "turns_completed": len(tally.acknowledged),
        "turns_failed": len(tally.failed),
        "turns_failed_injected": len(tally.failed_injected),
        "faults_armed": tally.faults_armed,
        "failures": dict(Counter(tally.failed).most_common(5)),
        "longest_wait_s": round(max(tally.waits, default=0), 2),
        "sessions_calls": len(sessions),
        "sessions_p99_ms": round(sessions[int(0.99 * (len(sessions) - 1))], 1) if sessions else None,
        "sessions_max_ms": round(sessions[-1], 1) if sessions else None,
        "event_loop_lag": lag,
        "server_start": start_sample, "server_after_warm_up": warm_sample, "server_end": end_sample,
        "rss_growth_after_warm_up": round(growth, 3) if growth is not None else None,
        "model_switches": tally.switches,
        "chat_admin_cycles_failed": len(tally.admin_errors), "chat_admin_errors": tally.admin_errors[:3],
        "ingest_runs": len(tally.ingests),
        "ingest_failed": sum("error" in run for run in tally.ingests),
        "median_turn_wait_s": round(statistics.median(tally.waits), 3) if tally.waits else None,
        **stored,
    }
    report["goals"] = {
        "0_lost": stored["lost_turns"] == 0,
        "only_injected_failed": not tally.failed,
        "0_hangs(longest_wait<60s)": report["longest_wait_s"] < 60,
        "event_loop_lag_p99<100ms": lag["p99_ms"] < 100,
        "rss_growth<10%": growth is not None and growth < 0.10,
        # Gradio's and the engine's thread pools start on first use, so "flat" counts from after warm-up.
        "fds_not_growing_after_warm_up(+10)": bool(warm_sample) and end_sample["fds"] <= warm_sample["fds"] + 10,
        "threads_not_growing_after_warm_up(+5)": bool(warm_sample) and end_sample["threads"] <= warm_sample["threads"] + 5,
        "integrity_ok": stored["integrity"] == "ok",
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--quick", action="store_true", help="2 minutes, a fault every 40 s")
    parser.add_argument("--fault-every", type=float, default=180, help="seconds between injected faults")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    minutes, fault_every = (2, 40) if args.quick else (args.minutes, args.fault_every)
    print(json.dumps(run(minutes, fault_every), indent=2))


if __name__ == "__main__":
    main()
