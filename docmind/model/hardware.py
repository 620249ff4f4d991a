"""What this machine can run: CUDA (VRAM), Apple MPS, or CPU (RAM, cores), and the plan that follows.

Detection is cheap: torch is imported only when its build can see a GPU (a CUDA build, or macOS for MPS).

Quantization per device, chosen by measurement (tests/benchmarks/bench_model.py):
- CPU: the format is measured on the user's machine at the first load of a model (``docmind.model.tuning``)
  among bf16 (float32 when the CPU lacks native bf16), int8 weight-only and int4 weight-only (torch's CPU
  int4 kernel through TorchAO's CPU packing). ``plan_for`` gives the plan before any measurement exists:
  bf16 when RAM allows, else int8 weight-only (Qwen3-0.6B shape, 2-core AVX-512 EPYC, one thread:
  bf16 6.0 tok/s, int8 weight-only 4.1, int4 weight-only 12.9).
- CUDA: int4 weight-only (TorchAO tinygemm), fast and a quarter of the weight memory.
- MPS: float16, no TorchAO (its kernels do not cover MPS).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from docmind.model import speed
from docmind.model.errors import InsufficientMemoryError
from docmind.model.registry import GB, MODELS, ModelSpec

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8-weight", "int8-dynamic", "int4-weight")


@dataclass(frozen=True)
class Hardware:
    """The compute DocMind can use."""

    device: str
    """``cuda``, ``mps`` or ``cpu``."""
    device_name: str
    cpu_cores: int
    ram_total: int
    ram_available: int
    vram_total: int = 0

    @property
    def summary(self) -> str:
        ram = f"{self.ram_available / GB:.1f}/{self.ram_total / GB:.1f} GB RAM free"
        if self.device == "cuda":
            return f"cuda ({self.device_name}, {self.vram_total / GB:.1f} GB VRAM), {ram}"
        return f"{self.device} ({self.device_name}, {self.cpu_cores} cores), {ram}"


@dataclass(frozen=True)
class LoadPlan:
    """How to run a model here: device, dtype, TorchAO quantization, and why."""

    device: str
    dtype: str
    """``bfloat16``, ``float16`` or ``float32``."""
    quantization: str
    """One of ``QUANTIZATIONS``."""
    reason: str


@dataclass(frozen=True)
class ModelFit:
    """How one listed model would run on this machine: memory, and the estimated answer speed."""

    spec: ModelSpec
    plan: LoadPlan
    memory_bytes: int
    fits: bool
    """True when it fits in free RAM (or GPU memory)."""
    tokens_per_second: float
    answer_seconds: float
    """Estimated time for a typical answer, thinking included (docmind.model.speed)."""


@dataclass(frozen=True)
class Recommendation:
    """The model to offer this machine by default, with the plan to run it and why, in plain words."""

    spec: ModelSpec
    plan: LoadPlan
    reason: str
    fit: ModelFit


def _torch_build_has_cuda() -> bool:
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    version_file = Path(spec.origin).parent / "version.py"
    try:
        text = version_file.read_text()
    except OSError:
        return True  # unknown build: ask torch itself
    return re.search(r"^(cuda|hip)\s*(:.*)?=\s*'", text, re.MULTILINE) is not None


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), which identifies a machine's tuning record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def cpu_has_native_bf16() -> bool | None:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), False when it lacks both, None
    when unknown (no ``/proc/cpuinfo``)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def detect_hardware() -> Hardware:
    """Detect GPU/CPU and memory. Imports torch only if its build could see a GPU."""
    import psutil

    memory = psutil.virtual_memory()
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    cpu_name = cpu_model_name()
    base = dict(cpu_cores=cores, ram_total=memory.total, ram_available=memory.available)
    if _torch_build_has_cuda():
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return Hardware(device="cuda", device_name=props.name, vram_total=props.total_memory, **base)
    if sys.platform == "darwin" and platform.machine() == "arm64":
        import torch

        if torch.backends.mps.is_available():
            return Hardware(device="mps", device_name="Apple GPU", **base)
    return Hardware(device="cpu", device_name=cpu_name, **base)


def plan_for(spec: ModelSpec | None, hardware: Hardware, quantization: str = "auto",
             weights_bytes: int | None = None) -> LoadPlan:
    """Choose dtype and quantization for ``spec`` (or a local model of ``weights_bytes``) on ``hardware``.

    ``quantization`` other than ``auto`` forces a TorchAO config (one of ``QUANTIZATIONS``).
    """
    if quantization not in ("auto", *QUANTIZATIONS):
        raise ValueError(f"Unknown quantization {quantization!r}: use auto or one of {', '.join(QUANTIZATIONS)}.")
    if hardware.device == "cuda":
        quant = "int4-weight" if quantization == "auto" else quantization
        return LoadPlan("cuda", "bfloat16", quant,
                        "CUDA GPU: bf16 with int4 weight-only (TorchAO) for speed and memory")
    if hardware.device == "mps":
        return LoadPlan("mps", "float16", "none", "Apple GPU: float16; TorchAO kernels do not cover MPS")
    if quantization != "auto":
        return LoadPlan("cpu", "bfloat16", quantization, f"CPU, quantization {quantization} chosen in settings")
    need = spec.ram_bytes if spec else int((weights_bytes or 0) * 1.3)
    if need <= hardware.ram_available:
        return LoadPlan("cpu", "bfloat16", "none",
                        "CPU with enough RAM: bf16 until the first load measures bf16, int8 and int4 on this computer")
    return LoadPlan("cpu", "bfloat16", "int8-weight",
                    f"CPU with {hardware.ram_available / GB:.1f} GB free RAM, bf16 needs {need / GB:.1f} GB: "
                    "int8 weight-only halves memory at some speed cost")


def memory_needed(spec: ModelSpec | None, plan: LoadPlan, weights_bytes: int | None = None) -> int:
    """Memory the model needs under ``plan`` (RAM on CPU, VRAM on a GPU)."""
    if spec is None:
        base = int((weights_bytes or 0) * 1.3)
    else:
        base = spec.vram_bytes if plan.device == "cuda" else spec.ram_bytes
    if plan.dtype == "float32" and plan.quantization == "none":
        return base * 2
    factor = {"none": 1.0, "int8-weight": 0.55, "int8-dynamic": 0.55, "int4-weight": 0.4}[plan.quantization]
    return int(base * factor)


def check_memory(spec: ModelSpec | None, plan: LoadPlan, hardware: Hardware, weights_bytes: int | None = None) -> None:
    """Raise ``InsufficientMemoryError`` suggesting a smaller model when this one cannot fit."""
    need = memory_needed(spec, plan, weights_bytes)
    have = hardware.vram_total if plan.device == "cuda" else hardware.ram_available
    if need <= have:
        return
    kind = "GPU memory" if plan.device == "cuda" else "free RAM"
    name = spec.hub_id if spec else "this model"
    smaller = [m for m in MODELS if (spec is None or m.params_b < spec.params_b)
               and memory_needed(m, plan_for(m, hardware)) <= have]
    hint = (f"Choose a smaller model: set DOCMIND_MODEL={smaller[0].hub_id} ({smaller[0].label}, "
            f"{plan_for(smaller[0], hardware).quantization} weights) and run `docmind model download`." if smaller
            else "No listed model fits; close other programs or use a machine with more memory.")
    raise InsufficientMemoryError(f"{name} needs about {need / GB:.1f} GB of {kind}, this machine has "
                                  f"{have / GB:.1f} GB. {hint}")


def model_fit(spec: ModelSpec, hardware: Hardware) -> ModelFit:
    """Whether ``spec`` fits here and how fast it would answer (an estimate, see docmind.model.speed)."""
    plan = plan_for(spec, hardware)
    memory = memory_needed(spec, plan)
    have = hardware.vram_total if plan.device == "cuda" else hardware.ram_available
    tokens = speed.decode_tokens_per_second(spec.download_bytes, plan.device, hardware.cpu_cores, plan.quantization)
    return ModelFit(spec, plan, memory, memory <= have, tokens, speed.answer_seconds(tokens, spec.thinks))


def recommend(hardware: Hardware) -> Recommendation:
    """The largest listed model that fits in memory and answers in reasonable time here (else the fastest)."""
    fits = [model_fit(spec, hardware) for spec in MODELS]  # largest first
    usable = [fit for fit in fits if fit.fits]
    quick = [fit for fit in usable if fit.answer_seconds <= speed.REASONABLE_ANSWER_SECONDS]
    if quick:
        best = quick[0]
        larger = usable[0] if usable[0] is not best else None
        reason = f"{best.spec.name} answers in {speed.describe_seconds(best.answer_seconds)} on this computer"
        reason += (f"; {larger.spec.name} would fit too, but an answer would take "
                   f"{speed.describe_seconds(larger.answer_seconds)}" if larger else
                   ", and it is the best model this computer can run")
    elif usable:
        best = usable[-1]
        reason = (f"{best.spec.name} is the fastest model; on this computer an answer takes "
                  f"{speed.describe_seconds(best.answer_seconds)}")
    else:
        best = fits[-1]
        reason = (f"This computer has little free memory: {best.spec.name} is the only option, "
                  "and it may be slow or fail to load. Closing other programs helps")
    return Recommendation(best.spec, best.plan, reason, best)
