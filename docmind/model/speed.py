"""How fast a model will answer on this computer, estimated before it is downloaded.

Until the plan is measured per machine, the estimate comes from the model's size and the hardware.

Derivation. Decoding one token reads every weight once, so on a CPU the decode speed is bounded by memory
bandwidth divided by the bytes of the weights: ``tokens/s ~= bandwidth / weight bytes``. Measured on this
project's 2-core CPU machine, bf16, batch 1 (tests/benchmarks/bench_model.py):

- Qwen3-0.6B shape (1.5 GB of weights): 10-16 tok/s, so ~13 x 1.5 = ~20 GB/s read;
- Qwen3-4B shape (8.0 GB of weights): ~2.5 tok/s, so 2.5 x 8.0 = ~20 GB/s read.

Both give the same ~20 GB/s: about ``CPU_GBPS_PER_CORE`` = 10 GB/s per core, which stops growing at the
memory bus (``CPU_GBPS_MAX``, dual-channel DDR4/DDR5 desktops and laptops). TorchAO's eager int8
weight-only halves the bytes but measured 0.41x bf16's speed on this CPU (see docmind.model.hardware), so
it gets that factor. GPUs are far from their bandwidth at batch 1 with these kernels; ``GPU_GBPS`` and
``MPS_GBPS`` are deliberately low figures for a mid-range card and an M-series Mac.

A typical answer is ``ANSWER_TOKENS`` tokens; a thinking model first writes about ``THINKING_TOKENS``
more. ``REASONABLE_ANSWER_SECONDS`` is how long a user waits for an answer before the app feels broken:
the recommendation picks the largest model that fits in memory and answers within it.
"""

from __future__ import annotations

GBPS = 1e9
CPU_GBPS_PER_CORE = 10.0
CPU_GBPS_MAX = 60.0
GPU_GBPS = 300.0
MPS_GBPS = 100.0
INT8_CPU_SPEED_FACTOR = 0.41
"""Measured int8 weight-only / bf16 decode speed on CPU (eager TorchAO)."""
QUANTIZED_BYTES = {"none": 1.0, "int8-weight": 0.55, "int8-dynamic": 0.55, "int4-weight": 0.3}
ANSWER_TOKENS = 250
THINKING_TOKENS = 600
REASONABLE_ANSWER_SECONDS = 90.0
WORDS_PER_TOKEN = 0.75
DOWNLOAD_MBIT_PER_S = 50.0
"""The connection speed download times are quoted for (a typical home broadband line)."""


def decode_tokens_per_second(weight_bytes: int, device: str, cpu_cores: int, quantization: str = "none") -> float:
    """Estimated batch-1 decode speed for ``weight_bytes`` of bf16 weights under ``quantization`` on ``device``."""
    if device == "cuda":
        bandwidth = GPU_GBPS
    elif device == "mps":
        bandwidth = MPS_GBPS
    else:
        bandwidth = min(CPU_GBPS_PER_CORE * max(cpu_cores, 1), CPU_GBPS_MAX)
    weight_bytes = max(weight_bytes, 1)
    if device == "cpu" and quantization.startswith("int8"):
        return bandwidth * GBPS / weight_bytes * INT8_CPU_SPEED_FACTOR
    return bandwidth * GBPS / (weight_bytes * QUANTIZED_BYTES.get(quantization, 1.0))


def answer_seconds(tokens_per_second: float, thinks: bool) -> float:
    """Estimated time to write a typical answer (and, for a thinking model, its thinking first)."""
    tokens = ANSWER_TOKENS + (THINKING_TOKENS if thinks else 0)
    return tokens / max(tokens_per_second, 1e-6)


def download_seconds(nbytes: int, mbit_per_s: float = DOWNLOAD_MBIT_PER_S) -> float:
    """Time to download ``nbytes`` at ``mbit_per_s``."""
    return nbytes * 8 / (mbit_per_s * 1e6)


def describe_seconds(seconds: float) -> str:
    """A duration as a person says it: "about 40 seconds", "about 6 minutes", "about 2 hours"."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} seconds"
    if seconds < 5400:
        minutes = round(seconds / 60)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"about {seconds / 3600:.1f} hours"
