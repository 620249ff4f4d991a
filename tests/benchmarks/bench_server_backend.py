"""Model-server backend benchmark: DocMind over ``transformers serve`` vs the same server called directly.

Prints one JSON document:
- time to first token and decode tokens/s of one answer through DocMind (``ChatService`` with
  ``llm_base_url``: the ReAct agent, the session store) vs the same request sent straight to the server
  with the ``openai`` client (DocMind's first request of a turn, captured once through a recording proxy,
  with each round's question put in), median of ``--rounds`` rounds. Both sides are warmed first; the
  side that goes first alternates from round to round, and each request has its own question of the same
  length (``question``), so neither side gains from the server's state after the other's request;
- aggregate completion tokens/s of 5 concurrent DocMind sessions vs 1.

``--shape 0.6b`` (default) serves a random-weight model of the real Qwen3-0.6B shape whose output layer
keeps only printable tokens (bench_ui's realistic model); ``--shape tiny`` serves the tiny test model, for
a loaded machine. Usage: python tests/benchmarks/bench_server_backend.py [--shape 0.6b|tiny] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

CONCURRENT = 5
TIMEOUT_S = 1800
"""DocMind's wait for the server: ``transformers serve`` on 2 cores prefills five long prompts one after another,
so the fifth session waits minutes (the app's default, 120 s, ends it)."""
QUESTION = "Question {n}: what does the Zorblax warranty cover, and for how long? Answer briefly."
DOCUMENT = "The Zorblax warranty covers repairs for 3 years. Returns are accepted within 30 days of purchase.\n"


async def direct(base_url: str, request: dict) -> dict:
    """One streamed request straight to the server: time to first content and decode tokens/s."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0)
    started = time.perf_counter()
    first, usage = None, None
    extra = {k: v for k, v in request.items() if k not in ("model", "messages", "stream", "stream_options")}
    stream = await client.chat.completions.create(model=request["model"], messages=request["messages"], stream=True,
                                                  stream_options={"include_usage": True}, extra_body=extra)
    async for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if first is None and delta is not None and (delta.content or (delta.model_extra or {}).get("reasoning_content")):
            first = time.perf_counter() - started
        usage = chunk.usage or usage
    seconds = time.perf_counter() - started
    await client.close()
    return _timing(first, seconds, usage.prompt_tokens, usage.completion_tokens)


async def through_docmind(service, question: str) -> dict:
    """One chat turn through DocMind: time to the first streamed token and decode tokens/s of the turn."""
    from docmind.agent.events import AnswerToken, Done, ThinkingToken, TurnFailed

    started = time.perf_counter()
    first, done = None, None
    async for event in service.chat(None, question):
        if first is None and isinstance(event, (AnswerToken, ThinkingToken)):
            first = time.perf_counter() - started
        if isinstance(event, TurnFailed):
            raise RuntimeError(event.message)
        done = event if isinstance(event, Done) else done
    seconds = time.perf_counter() - started
    return _timing(first, seconds, done.prompt_tokens, done.completion_tokens)


def _timing(first: float | None, seconds: float, prompt_tokens: int, completion_tokens: int) -> dict:
    first = first if first is not None else seconds
    decode = max(seconds - first, 1e-9)
    return {"ttft_s": first, "seconds": seconds, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "decode_tok_s": max(completion_tokens - 1, 0) / decode}


def question(round_number: int, side: str) -> str:
    """The question of one side ("a" or "b") in one round: the same length for every round and side."""
    return QUESTION.format(n=f"{round_number:03d}{side}")


def _median(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


async def concurrent_sessions(service, clients: int, rounds: int) -> dict:
    started = time.perf_counter()
    results = []
    for r in range(rounds):
        results += await asyncio.gather(*(through_docmind(service, question(100 * clients + 10 * r + i, "c"))
                                          for i in range(clients)))
    seconds = time.perf_counter() - started
    tokens = sum(x["completion_tokens"] for x in results)
    return {"clients": clients, "turns": len(results), "completion_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 2)}


def capture_request(settings, upstream: str, question: str) -> str:
    """The body of DocMind's first request of a turn asking ``question`` (JSON text), via a recording proxy."""
    from docmind.agent.chat import ChatService
    from tests.fixtures.model_server import KeyCheckingProxy

    proxy = KeyCheckingProxy(upstream, "bench").start()
    try:
        recorder = ChatService(settings.model_copy(update={"llm_base_url": proxy.url(), "llm_api_key": "bench"}))
        asyncio.run(through_docmind(recorder, question))
    finally:
        proxy.stop()
    return next(b.decode() for b in proxy.bodies if b'"messages"' in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("0.6b", "tiny"), default="0.6b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    from docmind.agent.chat import ChatService
    from docmind.cache.ingest import Ingestor
    from docmind.config import load_settings
    from tests.fixtures.model_server import start_transformers_serve

    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        if args.shape == "tiny":
            from tests.fixtures.tiny_model import build_tiny_qwen3

            model_dir, built = build_tiny_qwen3(work / "model"), {}
        else:
            from tests.benchmarks.bench_ui import _realistic_model

            model_dir, built = _realistic_model(work / "model")
        served = start_transformers_serve(model_dir, work / "serve.log")
        try:
            docs = work / "docs"
            docs.mkdir()
            (docs / "warranty.md").write_text(DOCUMENT)
            settings = load_settings(data_dir=work / "data", llm_base_url=served.base_url, llm_model=served.model,
                                     max_new_tokens=args.new_tokens, llm_timeout_seconds=TIMEOUT_S)
            Ingestor(settings).ingest([docs])
            service = ChatService(settings)
            asyncio.run(through_docmind(service, question(999, "w")))  # loads the embedder, warms the server
            captured = capture_request(settings, served.base_url, QUESTION.format(n="{n}"))

            def direct_turn(round_number: int) -> dict:
                request = json.loads(captured.replace("{n}", f"{round_number:03d}a"))
                return asyncio.run(direct(served.base_url, request))

            def docmind_turn(round_number: int) -> dict:
                return asyncio.run(through_docmind(service, question(round_number, "b")))

            direct_turn(998)  # warms the direct side too (its client, the server's path for a replayed request)
            direct_rows, docmind_rows = [], []
            for n in range(args.rounds):
                if n % 2 == 0:
                    direct_rows.append(direct_turn(n))
                    docmind_rows.append(docmind_turn(n))
                else:
                    docmind_rows.append(docmind_turn(n))
                    direct_rows.append(direct_turn(n))
            ttft = {"direct": {k: _median(direct_rows, k) for k in ("ttft_s", "decode_tok_s", "prompt_tokens")},
                    "docmind": {k: _median(docmind_rows, k) for k in ("ttft_s", "decode_tok_s", "prompt_tokens")}}
            ttft["ttft_ratio"] = round(ttft["docmind"]["ttft_s"] / ttft["direct"]["ttft_s"], 2)
            print(json.dumps(ttft), file=sys.stderr, flush=True)  # kept if the concurrency part fails
            one = asyncio.run(concurrent_sessions(service, 1, CONCURRENT))
            five = asyncio.run(concurrent_sessions(service, CONCURRENT, 1))
        finally:
            served.stop()
    report = {
        "model": f"Qwen3-{args.shape} shape (random weights)" if args.shape == "0.6b" else "tiny test Qwen3",
        **built,
        "server": "transformers serve (default options, CPU)",
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "rounds": args.rounds,
        "new_tokens": args.new_tokens,
        **ttft,
        "concurrency": {"one": one, "five": five, "speedup": round(five["tokens_per_s"] / one["tokens_per_s"], 2)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
