"""UI benchmark: start-up, /chat overhead and concurrent /chat throughput. Prints one JSON document.

- process start -> first HTTP 200, and -> page interactive in Debian Chromium (median of RUNS starts);
- time to first streamed token through /chat vs calling the agent (ChatService) directly, same tiny model;
- aggregate completion tokens/s of 5 concurrent /chat clients vs 1 client.

Runs on the tiny random-weight Qwen3 test model and the shipped MiniLM embeddings, in a temp data dir.
Usage: .venv/bin/python tests/benchmarks/bench_ui.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RUNS = 3
TTFT_QUESTIONS = 10
CONCURRENT = 5
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
DOCUMENT = "The Zorblax warranty covers repairs for 3 years. Returns are accepted within 30 days of purchase.\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Start ``docmind serve``; return the process, its URL and the start time (perf_counter)."""
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "docmind", "serve", "--no-browser", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}/", started


def _first_200(url: str, started: float, timeout: float = 120) -> float:
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} never answered")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_startup(env: dict[str, str], work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    http, interactive = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for run in range(RUNS):
            process, url, started = _start(env, work / f"startup-{run}.log")
            try:
                http.append(_first_200(url, started))
                page = browser.new_page()
                page.goto(url)
                page.locator("#docmind-question textarea").wait_for(state="visible", timeout=60_000)
                page.wait_for_function("() => !document.querySelector('#docmind-question textarea').disabled")
                interactive.append(time.perf_counter() - started)
                page.close()
            finally:
                _stop(process)
        browser.close()
    return {
        "runs": RUNS,
        "first_http_200_s": round(statistics.median(http), 2),
        "page_interactive_s": round(statistics.median(interactive), 2),
        "all_first_http_200_s": [round(x, 2) for x in http],
        "all_page_interactive_s": [round(x, 2) for x in interactive],
        "goal_page_served_within_s": 10,
    }


def _ttft_pairs(settings, url: str) -> tuple[list[float], list[float]]:
    """Time to first streamed token, alternating a direct ChatService turn and a /chat turn (same load on both)."""
    from gradio_client import Client

    from docmind.agent.chat import ChatService
    from docmind.agent.events import AnswerToken, ThinkingToken

    service = ChatService(settings)
    client = Client(url, verbose=False)

    async def direct(question: str) -> float:
        started = time.perf_counter()
        first = float("nan")
        async for event in service.chat(None, question):
            if first != first and isinstance(event, (AnswerToken, ThinkingToken)) and event.text:
                first = time.perf_counter() - started
        return first

    def via_api(question: str) -> float:
        started = time.perf_counter()
        first = float("nan")
        for partial in client.submit(question, api_name="/chat"):
            if first != first and (partial["answer"] or partial["thinking"]):
                first = time.perf_counter() - started
        return first

    loop = asyncio.new_event_loop()
    direct_times, api_times = [], []
    try:
        for index in range(TTFT_QUESTIONS + 1):  # the first pair warms both paths up
            question = f"What does the warranty cover? ({index})"
            d, a = loop.run_until_complete(direct(question)), via_api(question)
            if index:
                direct_times.append(d)
                api_times.append(a)
    finally:
        loop.close()
    return direct_times, api_times


def _gradio_floor_ms() -> float:
    """Time to the first streamed output of a Gradio endpoint that yields at once: the floor /chat cannot beat."""
    import gradio as gr
    from gradio_client import Client

    async def instant(message: str) -> dict:
        yield {"answer": message}

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.api(instant, api_name="instant")
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        times = []
        for index in range(TTFT_QUESTIONS + 1):
            started = time.perf_counter()
            next(iter(client.submit("x", api_name="/instant")))
            if index:
                times.append(time.perf_counter() - started)
    finally:
        demo.close()
    return statistics.median(times) * 1000


def _throughput(url: str, clients: int) -> dict:
    """Ask the same CONCURRENT questions with ``clients`` clients at once (1: one after another)."""
    from gradio_client import Client

    questions = [f"Question {k}: summarise the warranty terms" for k in range(CONCURRENT)]
    tokens: list[int] = []
    errors: list[str] = []

    def worker(share: list[str]) -> None:
        client = Client(url, verbose=False)
        for question in share:
            result = client.submit(question, api_name="/chat").result()
            if result["error"]:
                errors.append(result["error"])
            tokens.append(result["completion_tokens"])

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(questions[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"clients": clients, "requests": len(questions), "completion_tokens": sum(tokens),
            "seconds": round(seconds, 2), "tokens_per_s": round(sum(tokens) / seconds, 1),
            "requests_per_s": round(len(questions) / seconds, 2), "errors": errors[:3]}


def main() -> None:
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # libraries (Rust and Python alike) print to stdout; only the JSON goes there
    try:
        with contextlib.redirect_stdout(sys.stderr):
            report = measure()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps(report, indent=2))


def measure() -> dict:
    from tests.fixtures.tiny_model import build_tiny_qwen3

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_qwen3(work / "tiny-qwen3")
        data_dir = work / "data"
        (data_dir / "library").mkdir(parents=True)
        env = {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "DOCMIND_MODEL_PATH": str(model_dir),
               "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
               "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1"}
        os.environ.update({k: env[k] for k in ("DOCMIND_DATA_DIR", "DOCMIND_MODEL_PATH", "HF_HUB_OFFLINE",
                                                "TOKENIZERS_PARALLELISM", "TORCHAO_FORCE_SKIP_LOADING_SO_FILES")})
        document = data_dir / "library" / "warranty.txt"
        document.write_text(DOCUMENT)
        subprocess.run([sys.executable, "-m", "docmind", "ingest", str(document), "--json"], cwd=ROOT, env=env,
                       check=True, capture_output=True)

        startup = measure_startup(env, work)

        from docmind.config import load_settings

        process, url, started = _start(env, work / "chat.log")
        try:
            _first_200(url, started)
            direct, via_api = _ttft_pairs(load_settings(), url)
            one = _throughput(url, 1)
            five = _throughput(url, CONCURRENT)
        finally:
            _stop(process)
        floor_ms = _gradio_floor_ms()

    direct_ms, api_ms = statistics.median(direct) * 1000, statistics.median(via_api) * 1000
    return {
        "benchmark": "ui",
        "model": "tiny random-weight Qwen3 (tests/fixtures/tiny_model.py)",
        "startup": startup,
        "ttft": {
            "questions": TTFT_QUESTIONS,
            "direct_agent_ms": round(direct_ms, 1),
            "via_chat_api_ms": round(api_ms, 1),
            "overhead_ms": round(api_ms - direct_ms, 1),
            "gradio_streaming_floor_ms": round(floor_ms, 1),
            "ratio": round(api_ms / direct_ms, 2),
            "goal_ratio": 1.2,
        },
        "concurrency": {
            "one_client": one,
            "five_clients": five,
            "speedup_tokens_per_s": round(five["tokens_per_s"] / one["tokens_per_s"], 2) if one["tokens_per_s"] else None,
            "speedup_requests_per_s": round(five["requests_per_s"] / one["requests_per_s"], 2),
        },
    }


if __name__ == "__main__":
    main()
