"""UI benchmark: start-up, /chat overhead and concurrent /chat throughput. Prints one JSON document.

- process start -> first HTTP 200, and -> page interactive in Debian Chromium (median of RUNS starts);
- time to first streamed token through /chat vs calling the agent (ChatService) directly, alternating
  the two paths with the same questions, on two models: the tiny random-weight Qwen3 test model, and a
  random-weight model of the real Qwen3-0.6B shape (bench_model.build), whose time to first token is
  realistic for a CPU;
- aggregate completion tokens/s of 5 concurrent /chat clients vs 1 client (the tiny model changed so that
  every answer has the same length).

Uses the shipped MiniLM embeddings, in a temp data dir.
Usage: .venv/bin/python tests/benchmarks/bench_ui.py [--parts startup,ttft,concurrency,realistic] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
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

from docmind.ui.launch_guard import available_port  # noqa: E402

RUNS = 3
TTFT_QUESTIONS = 10
REALISTIC_ROUNDS = 8
REALISTIC_NEW_TOKENS = 16
"""Tokens per answer with the 0.6B-shape model: enough to stream, few enough to keep a round short."""
PARTS = ("startup", "ttft", "concurrency", "realistic")
CONCURRENT = 5
CONCURRENT_ANSWER_TOKENS = 64
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
DOCUMENT = "The Zorblax warranty covers repairs for 3 years. Returns are accepted within 30 days of purchase.\n"
LONG_QUESTION = (
    "Question {index}: what does the Zorblax warranty cover, for how many years does it last, which kinds of "
    "repairs are included, whether returns are accepted and within how many days of purchase, and is there "
    "anything the user must do to keep the warranty valid? Answer briefly and cite the passage."
)
"""About 190 tokens that no earlier prompt shares (the number comes first): like bench_model's 200-token TTFT."""


def _start(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str, float]:
    """Start ``docmind serve``; return the process, its URL and the start time (perf_counter)."""
    port = available_port("127.0.0.1", 0)
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


DIRECT_MARK = "TTFT "


def direct_worker() -> None:
    """``--direct-worker``: answer each stdin line with ChatService (a new session each); print its TTFT in s.

    The agent runs in a process of its own, like the server, so neither path shares a process (and
    its threads) with the benchmark's gradio_client.
    """
    from docmind.agent.chat import ChatService
    from docmind.agent.events import AnswerToken, ThinkingToken

    service = ChatService()

    async def ask(question: str) -> float:
        started = time.perf_counter()
        first = math.nan
        async for event in service.chat(None, question):
            if math.isnan(first) and isinstance(event, (AnswerToken, ThinkingToken)) and event.text:
                first = time.perf_counter() - started
        return first

    loop = asyncio.new_event_loop()
    for line in sys.stdin:
        print(DIRECT_MARK + json.dumps(loop.run_until_complete(ask(line.strip()))), flush=True)


def _ttft_pairs(env: dict[str, str], url: str, questions: list[str]) -> tuple[list[float], list[float]]:
    """Time to first streamed token of each question, asked once directly (ChatService) and once through /chat.

    The two paths alternate which goes first; each question starts a new session on both. The first
    question warms both paths up (model load, prompt-prefix KV) and is not counted.
    """
    from gradio_client import Client

    client = Client(url, verbose=False)
    worker = subprocess.Popen([sys.executable, __file__, "--direct-worker"], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def direct(question: str) -> float:
        worker.stdin.write(question + "\n")
        worker.stdin.flush()
        for line in worker.stdout:
            if line.startswith(DIRECT_MARK):
                return float(json.loads(line[len(DIRECT_MARK):]))
        raise RuntimeError("the direct-agent worker ended early")

    def via_api(question: str) -> float:
        started = time.perf_counter()
        first = math.nan
        for partial in client.submit(question, api_name="/chat"):
            if math.isnan(first) and (partial["answer"] or partial["thinking"]):
                first = time.perf_counter() - started
        return first

    direct_times, api_times = [], []
    try:
        for index, question in enumerate(questions):
            if index % 2:
                a, d = via_api(question), direct(question)
            else:
                d, a = direct(question), via_api(question)
            if index:
                direct_times.append(d)
                api_times.append(a)
    finally:
        worker.stdin.close()
        worker.wait(60)
    return direct_times, api_times


def _ttft_report(direct: list[float], via_api: list[float]) -> dict:
    """Medians and the overhead ratio; a turn that streamed no text at all is left out (and counted)."""
    pairs = [(d, a) for d, a in zip(direct, via_api) if not math.isnan(d) and not math.isnan(a)]
    direct_ms = statistics.median(d for d, _ in pairs) * 1000
    api_ms = statistics.median(a for _, a in pairs) * 1000
    return {
        "rounds": len(direct),
        "rounds_without_text": len(direct) - len(pairs),
        "direct_agent_ms": round(direct_ms, 1),
        "via_chat_api_ms": round(api_ms, 1),
        "overhead_ms": round(api_ms - direct_ms, 1),
        "ratio": round(api_ms / direct_ms, 3),
        "median_of_round_ratios": round(statistics.median(a / d for d, a in pairs), 3),
        "ratio_per_round": [round(a / d, 3) for d, a in pairs],
        "direct_ms_per_round": [round(d * 1000) for d, _ in pairs],
        "via_chat_api_ms_per_round": [round(a * 1000) for _, a in pairs],
        "goal_ratio": 1.2,
    }


def _gradio_floor_ms() -> float:
    """Time to the first streamed output of a Gradio endpoint that yields at once: the floor /chat cannot beat."""
    import gradio as gr
    from gradio_client import Client

    async def instant(message: str) -> dict:
        yield {"answer": message}

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.api(instant, api_name="instant")
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=available_port("127.0.0.1", 0),
                            prevent_thread_lock=True, quiet=True)
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


def _realistic_model(dest: Path) -> tuple[Path, dict]:
    """A random-weight model of the real Qwen3-0.6B shape that writes text the test tokenizer can decode.

    bench_model.build gives the real 151,936-row vocabulary but the test tokenizer knows only a few
    hundred ids, and many of those are single bytes that do not decode on their own, so sampled text
    would stay invisible until the end. The output layer is untied and keeps only (scaled up, so that
    they win the sampling) the rows of tokens that decode to printable ASCII; the matmul stays full
    size, so a step costs what it costs the real model. Stop tokens are among the zeroed rows:
    every answer runs to DOCMIND_MAX_NEW_TOKENS.
    """
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from tests.benchmarks.bench_model import build

    built = build("0.6b", dest)
    tokenizer = AutoTokenizer.from_pretrained(dest)
    special = set(tokenizer.all_special_ids)
    printable = [i for i in tokenizer.get_vocab().values()
                 if i not in special and (text := tokenizer.decode([i])).strip() and text.isascii()
                 and text.isprintable()]
    weights = load_file(dest / "model.safetensors")
    embedding = weights["model.embed_tokens.weight"]
    head = torch.zeros_like(embedding)
    head[printable] = embedding[printable].float().mul(8).to(embedding.dtype)
    weights["lm_head.weight"] = head
    save_file(weights, dest / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((dest / "config.json").read_text())
    config["tie_word_embeddings"] = False
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest, {**built, "output_tokens": len(printable)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=REALISTIC_ROUNDS,
                        help="counted TTFT rounds with the 0.6B-shape model")
    parser.add_argument("--direct-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct_worker:
        direct_worker()
        return
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown parts: {sorted(parts - set(PARTS))}")
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # libraries (Rust and Python alike) print to stdout; only the JSON goes there
    try:
        with contextlib.redirect_stdout(sys.stderr):
            report = measure(parts, args.rounds)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    print(json.dumps(report, indent=2))


def _environment(data_dir: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DOCMIND_DATA_DIR": str(data_dir), "DOCMIND_MODEL_PATH": str(model_dir),
            "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
            "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1", **extra}


def _library(env: dict[str, str], data_dir: Path) -> None:
    """One ingested document, so every turn searches a real library."""
    document = data_dir / "library" / "warranty.txt"
    document.parent.mkdir(parents=True)
    document.write_text(DOCUMENT)
    subprocess.run([sys.executable, "-m", "docmind", "ingest", str(document), "--json"], cwd=ROOT, env=env,
                   check=True, capture_output=True)


def _measure_ttft(env: dict[str, str], log_path: Path, questions: list[str]) -> dict:
    """Serve the app with ``env``'s model and compare /chat with the agent called in a process of its own."""
    process, url, started = _start(env, log_path)
    try:
        _first_200(url, started)
        direct, via_api = _ttft_pairs(env, url, questions)
    finally:
        _stop(process)
    return _ttft_report(direct, via_api)


def measure(parts: set[str], realistic_rounds: int) -> dict:
    from tests.fixtures.tiny_model import build_endless_model, build_tiny_qwen3

    report: dict = {"benchmark": "ui", "load_average_at_start": [round(x, 1) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        work = Path(tmp)
        tiny_dir = build_tiny_qwen3(work / "tiny-qwen3")
        tiny_env = _environment(work / "data", tiny_dir)
        _library(tiny_env, work / "data")

        if "startup" in parts:
            report["startup"] = measure_startup(tiny_env, work)
        if "ttft" in parts:
            questions = [f"What does the warranty cover? ({index})" for index in range(TTFT_QUESTIONS + 1)]
            report["ttft_tiny_model"] = {
                "model": "tiny random-weight Qwen3 (tests/fixtures/tiny_model.py)",
                **_measure_ttft(tiny_env, work / "ttft-tiny.log", questions),
                "gradio_streaming_floor_ms": round(_gradio_floor_ms(), 1),
            }
        if "concurrency" in parts:  # answers of one fixed length, so tokens/s compare like with like
            endless_env = _environment(work / "data-endless", build_endless_model(tiny_dir, work / "endless"),
                                       DOCMIND_MAX_NEW_TOKENS=str(CONCURRENT_ANSWER_TOKENS))
            _library(endless_env, work / "data-endless")
            process, url, started = _start(endless_env, work / "chat.log")
            try:
                _first_200(url, started)
                one = _throughput(url, 1)
                five = _throughput(url, CONCURRENT)
            finally:
                _stop(process)
            report["concurrency_tiny_model"] = {
                "model": f"tiny random-weight Qwen3 that never stops: every model call writes "
                         f"{CONCURRENT_ANSWER_TOKENS} tokens",
                "one_client": one,
                "five_clients": five,
                "speedup_tokens_per_s": (round(five["tokens_per_s"] / one["tokens_per_s"], 2)
                                         if one["tokens_per_s"] else None),
                "speedup_requests_per_s": round(five["requests_per_s"] / one["requests_per_s"], 2),
            }
        if "realistic" in parts:
            model_dir, built = _realistic_model(work / "qwen3-0.6b-shape" / "model")
            env = _environment(work / "data-0.6b", model_dir, DOCMIND_MAX_NEW_TOKENS=str(REALISTIC_NEW_TOKENS),
                               DOCMIND_QUANTIZATION="none")
            _library(env, work / "data-0.6b")
            questions = [LONG_QUESTION.format(index=index) for index in range(realistic_rounds + 1)]
            report["ttft_qwen3_0.6b_shape"] = {
                "model": "random-weight Qwen3-0.6B shape, bf16 (tests/benchmarks/bench_model.py build)",
                "params_m": built["params_m"],
                "tokens_it_can_write": built["output_tokens"],
                "new_tokens_per_answer": REALISTIC_NEW_TOKENS,
                "question": "about 190 tokens no earlier prompt shares; the system prompt's KV is reused",
                **_measure_ttft(env, work / "ttft-0.6b.log", questions),
            }
            if "ttft_tiny_model" in report:  # the UI's fixed cost, measured where it is not lost in the noise
                realistic, overhead = report["ttft_qwen3_0.6b_shape"], report["ttft_tiny_model"]["overhead_ms"]
                realistic["ratio_with_the_tiny_model_overhead"] = round(
                    (realistic["direct_agent_ms"] + overhead) / realistic["direct_agent_ms"], 3)
    report["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    return report


if __name__ == "__main__":
    main()
