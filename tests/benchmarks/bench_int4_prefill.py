"""int4 prefill through bf16 matmuls vs the int4 kernel, on the Qwen3-0.6B shape (random weights, in memory).

Prints one JSON document: the prefill of a 2,000-token prompt (in one pass, as the engine prefills a prompt
while nothing else runs, and in its 256-token chunks, as while other requests decode) and decode tok/s at
batch 1 after it, for bf16, int4 through torch's int4 kernel only ("int4_kernel") and int4 with the dense
prefill path ("int4_dense", ``docmind.model.int4_prefill``); and, for one decoder layer's linears, the int4
kernel vs dequantize + bf16 matmul at a range of row counts (to pick ``DENSE_MIN_ROWS``). Best of
``--rounds``, the formats taking turns. A few minutes on 2 idle cores.
Usage: python tests/benchmarks/bench_int4_prefill.py [--threads N] [--tokens N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from tests.benchmarks.bench_model import SHAPES  # noqa: E402

CHUNK = 256
"""The engine's ``prefill_chunk``: a prompt's prefill advances this many tokens per step while others decode."""
ROWS = (1, 8, 16, 32, 48, 64, 128, 256)


def _model():
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    spec = dict(SHAPES["0.6b"])
    rope_theta = spec.pop("rope_theta")
    config = Qwen3Config(vocab_size=151936, rms_norm_eps=1e-6,
                         rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, **spec)
    torch.manual_seed(0)
    return Qwen3ForCausalLM(config).to(torch.bfloat16).eval()


def _prefill(model, ids, chunk: int):
    """Seconds to prefill ``ids`` in passes of ``chunk`` tokens, and the cache."""
    import torch

    from docmind.model.kv import new_cache

    cache = new_cache(model.config)
    started = time.perf_counter()
    for start in range(0, len(ids), chunk):
        end = min(start + chunk, len(ids))
        model(input_ids=ids[None, start:end], position_ids=torch.arange(start, end)[None], cache=cache,
              use_cache=True, logits_to_keep=1)
    return time.perf_counter() - started, cache


def _decode_tok_s(model, cache, length: int, steps: int = 12) -> float:
    import torch

    model(input_ids=torch.tensor([[1]]), position_ids=torch.tensor([[length]]), cache=cache, use_cache=True)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        model(input_ids=torch.tensor([[1]]), position_ids=torch.tensor([[length + step]]), cache=cache,
              use_cache=True)
    return steps / (time.perf_counter() - started)


def _without_dense_prefill(model) -> None:
    """Undo ``use_dense_prefill``: every int4 layer back on the int4 kernel."""
    for module in model.modules():
        module.__dict__.pop("forward", None)


def _measure(models: dict, ids, rounds: int) -> dict:
    """Best of ``rounds`` for each (format, chunk), the formats taking turns so that a change in the machine's
    load touches them all alike."""
    from docmind.model.int4_prefill import use_dense_prefill

    plan = [("bf16", len(ids)), ("int4_kernel", len(ids)), ("int4_dense", len(ids)), ("bf16", CHUNK),
            ("int4_dense", CHUNK), ("int4_dense", 2 * CHUNK)]
    out: dict = {name: {} for name in models}
    for _ in range(rounds):
        for name, chunk in plan:
            model = models[name]
            (use_dense_prefill if name == "int4_dense" else _without_dense_prefill)(model)
            seconds, cache = _prefill(model, ids, chunk)
            key = f"prefill_s_chunk_{chunk}"
            out[name][key] = round(min(seconds, out[name].get(key, seconds)), 2)
            if chunk == len(ids):
                tok_s = _decode_tok_s(model, cache, len(ids))
                out[name]["decode_tok_s"] = round(max(tok_s, out[name].get("decode_tok_s", 0.0)), 2)
    return out


def _best(fn, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _rows_crossover(model) -> dict:
    """One decoder layer's linears: int4 kernel vs dequantize + bf16 matmul, ms per call, by rows."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from docmind.model.int4_prefill import dequantize

    linears = [m for m in model.model.layers[0].modules() if isinstance(m, nn.Linear)]
    table = {}
    for rows in ROWS:
        inputs = [torch.randn(rows, m.in_features, dtype=torch.bfloat16) for m in linears]
        kernel = _best(lambda: [F.linear(x, m.weight) for m, x in zip(linears, inputs)])
        dense = _best(lambda: [torch.matmul(x, dequantize(m.weight)) for m, x in zip(linears, inputs)])
        table[rows] = {"int4_kernel_ms": round(kernel * 1000, 2), "dense_ms": round(dense * 1000, 2)}
    table["dequantize_only_ms"] = round(_best(lambda: [dequantize(m.weight) for m in linears]) * 1000, 2)
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import copy

    import torch

    from docmind.model.attention import use_decode_attention
    from docmind.model.loading import quantize_model

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    bf16 = _model()
    use_decode_attention(bf16)
    int4 = copy.deepcopy(bf16)
    quantize_model(int4, "int4-weight", "cpu")
    ids = torch.randint(0, bf16.config.vocab_size, (args.tokens,))
    report: dict = {"shape": "Qwen3-0.6B (random weights)", "threads": args.threads, "prompt_tokens": args.tokens,
                    "rounds": args.rounds}
    with torch.inference_mode():
        report.update(_measure({"bf16": bf16, "int4_kernel": int4, "int4_dense": int4}, ids, args.rounds))
        report["one_layer_linears_by_rows"] = _rows_crossover(int4)
    report["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
