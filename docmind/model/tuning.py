"""The CPU plan measured on the user's machine: which weight format and thread count answer fastest.

At the first load of a model on a machine (the unquantized model in memory), ``tune`` times each
candidate format that fits in RAM: bf16 (plus float32 when the CPU lacks native bf16), int8 weight-only
and int4 weight-only. Only the linear layers differ between formats, so it times the real linear
layers of one decoder layer and the output layer, copied and quantized per format, for one decode step
and a ``PREFILL_TOKENS`` prefill, and adds what the rest of the model costs (attention, norms, Python),
measured once on the whole model. Each format's estimate for a typical document question
(``TYPICAL_PROMPT_TOKENS`` prompt tokens read, ``TYPICAL_ANSWER_TOKENS`` written) ranks it; the lowest
wins. The thread count is measured the same way. It all fits in ``BUDGET_SECONDS``.

The result is a ``PlanRecord`` in ``<data dir>/models/plan.json``, reused until the model files, the CPU,
its core count or the torch/torchao versions change. ``progress()`` tells a UI what is being measured.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from docmind.config import Settings
from docmind.model.hardware import Hardware, LoadPlan, cpu_has_native_bf16, cpu_model_name, memory_needed
from docmind.model.registry import ModelChoice

log = logging.getLogger(__name__)

TYPICAL_PROMPT_TOKENS = 2000
TYPICAL_ANSWER_TOKENS = 300
PREFILL_TOKENS = 64
"""Prompt length timed (a whole-model prefill of it runs once: 4B parameters make it a few seconds on a
weak laptop); prefill speed is taken as linear in length (attention's share is small at 2,000)."""
BUDGET_SECONDS = 30.0
PLAN_FILE = "plan.json"
QUANTIZED_FORMATS = ("int8-weight", "int4-weight")

TUNING_MESSAGE = "Tuning for this computer…"
"""The first progress message, for a UI to show while the formats are measured."""

Progress = Callable[[str, float], None]
"""Called with a message for the user and the fraction done (0..1)."""


@dataclass
class FormatSpeed:
    """A candidate's measured speed on this machine."""

    dtype: str
    quantization: str
    threads: int
    decode_tok_s: float
    prefill_tok_s: float

    @property
    def answer_seconds(self) -> float:
        """Estimated seconds for a typical question: the prompt read, then the answer written."""
        return TYPICAL_PROMPT_TOKENS / self.prefill_tok_s + TYPICAL_ANSWER_TOKENS / self.decode_tok_s

    def to_dict(self) -> dict:
        return {**asdict(self), "answer_seconds": round(self.answer_seconds, 2)}


@dataclass
class PlanRecord:
    """The measured plan of one model on one machine, and how it was measured."""

    key: str
    model: str
    cpu: str
    cores: int
    threads: int
    dtype: str
    quantization: str
    decode_tok_s: float
    prefill_tok_s: float
    answer_seconds: float
    tuning_seconds: float
    measured_at: str
    candidates: list[dict] = field(default_factory=list)
    """Every candidate measured, fastest first (``FormatSpeed.to_dict``)."""
    rejected: list[dict] = field(default_factory=list)
    """Quantizations the quality guard refused (``QualityReport.to_dict``)."""

    def plan(self) -> LoadPlan:
        return LoadPlan("cpu", self.dtype, self.quantization,
                        f"measured on this computer {self.measured_at[:10]}: {self.decode_tok_s:.1f} tok/s writing, "
                        f"{self.prefill_tok_s:.0f} tok/s reading, threads: {self.threads}")

    def ranking(self) -> list[LoadPlan]:
        """The candidates as plans, fastest first."""
        return [LoadPlan("cpu", c["dtype"], c["quantization"], "measured fallback") for c in self.candidates]


@dataclass
class TuningProgress:
    """What the tuning in this process is doing now (``progress()``), for a UI to poll."""

    active: bool = False
    message: str = ""
    fraction: float = 0.0


_progress = TuningProgress()
_progress_lock = threading.Lock()


def progress() -> TuningProgress:
    """A snapshot of the tuning under way in this process (``active`` False when none)."""
    with _progress_lock:
        return copy.copy(_progress)


def _report(message: str, fraction: float, callback: Progress | None, active: bool = True) -> None:
    with _progress_lock:
        _progress.active, _progress.message, _progress.fraction = active, message, fraction
    # start and end reach the terminal at the default level: they explain a pause of up to half a minute
    level = logging.WARNING if fraction in (0.0, 1.0) else logging.INFO
    log.log(level, "%s (%.0f%%)", message, fraction * 100)
    if callback is not None:
        callback(message, fraction)


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def record_key(choice: ModelChoice, hardware: Hardware) -> str:
    """What a record depends on: the model files, the CPU and its cores, the torch/torchao versions."""
    files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in choice.path.glob("*.safetensors"))
    identity = {"model": choice.name, "files": files, "cpu": cpu_model_name(), "cores": hardware.cpu_cores,
                "torch": _package_version("torch"), "torchao": _package_version("torchao")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _plan_file(settings: Settings) -> Path:
    return settings.data_dir / "models" / PLAN_FILE


def _read_all(settings: Settings) -> dict[str, dict]:
    path = _plan_file(settings)
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring unreadable %s (%s); the plan will be measured again", path, error)
        return {}


def read_record(settings: Settings, choice: ModelChoice, hardware: Hardware) -> PlanRecord | None:
    """The measured plan of this model on this machine, or None when it must be measured (again)."""
    if not choice.path.is_dir():
        return None
    entry = _read_all(settings).get(str(choice.path.resolve()))
    if not entry or entry.get("key") != record_key(choice, hardware):
        return None
    try:
        return PlanRecord(**entry)
    except TypeError:
        return None


def write_record(settings: Settings, choice: ModelChoice, record: PlanRecord) -> None:
    """Store ``record`` as the plan of ``choice`` (one entry per model directory, atomically replaced)."""
    from filelock import FileLock

    path = _plan_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        records = _read_all(settings)
        records[str(choice.path.resolve())] = asdict(record)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(records, indent=2))
        os.replace(tmp, path)


def candidates(choice: ModelChoice, hardware: Hardware, weights_bytes: int) -> list[LoadPlan]:
    """The formats to measure: those that fit in the RAM available now."""
    dtypes = ["bfloat16"] + (["float32"] if cpu_has_native_bf16() is not True else [])
    plans = [LoadPlan("cpu", dtype, "none", "candidate") for dtype in dtypes]
    plans += [LoadPlan("cpu", "bfloat16", q, "candidate") for q in QUANTIZED_FORMATS]
    fits = [p for p in plans if memory_needed(choice.spec, p, weights_bytes) <= hardware.ram_available]
    return fits or plans[-1:]


def _best_seconds(fn: Callable[[], Any], deadline: float, repeats: int = 3, min_seconds: float = 0.3,
                  warm_up: bool = True) -> float:
    """The fastest run of ``fn`` (after a warm-up run): at least ``repeats`` runs and ``min_seconds`` of
    them (the minimum resists other programs' load), fewer when past ``deadline``."""
    if warm_up:
        fn()
    best, spent, runs = float("inf"), 0.0, 0
    while (runs < repeats or spent < min_seconds) and runs < 50:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
        if time.perf_counter() > deadline:
            break
    return best


def _linears(model: Any) -> tuple[list[Any], Any]:
    import torch.nn as nn

    layer = model.model.layers[0]
    return [m for m in layer.modules() if isinstance(m, nn.Linear)], model.get_output_embeddings()


def _time_linears(layer: list[Any], head: Any, prefill_tokens: int, deadline: float) -> tuple[float, float, float]:
    """Seconds of one decode step and one prefill through one layer's linears, and of one head step."""
    import torch

    dtype = head.weight.dtype
    decode_in = [torch.randn(1, m.in_features, dtype=dtype) for m in layer]
    prefill_in = [torch.randn(prefill_tokens, m.in_features, dtype=dtype) for m in layer]
    head_in = torch.randn(1, head.in_features, dtype=dtype)
    with torch.inference_mode():
        decode = _best_seconds(lambda: [m(x) for m, x in zip(layer, decode_in, strict=True)], deadline)
        prefill = _best_seconds(lambda: [m(x) for m, x in zip(layer, prefill_in, strict=True)], deadline, 2)
        head_step = _best_seconds(lambda: head(head_in), deadline)
    return decode, prefill, head_step


def _time_model(model: Any, prefill_tokens: int, deadline: float) -> tuple[float, float]:
    """Seconds of one decode step and of one ``prefill_tokens`` prefill (run once) through the whole model."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    ids = torch.randint(0, model.config.vocab_size, (1, prefill_tokens))
    length = prefill_tokens
    with torch.inference_mode():
        prefill_s = _best_seconds(lambda: model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1),
                                  deadline, 1, 0.0, warm_up=False)

        def decode() -> None:
            nonlocal length
            model(input_ids=torch.tensor([[1]]), cache=cache, use_cache=True, logits_to_keep=1,
                  cache_position=torch.tensor([length]))
            length += 1

        decode_s = _best_seconds(decode, deadline, 4)
    return decode_s, prefill_s


def _format_copy(layer: list[Any], head: Any, plan: LoadPlan) -> tuple[list[Any], Any]:
    """Copies of the linears in ``plan``'s dtype and quantization, running as the engine runs them (int4:
    prompts through bf16 matmuls, ``int4_prefill``)."""
    import torch
    import torch.nn as nn

    from docmind.model.int4_prefill import use_dense_prefill
    from docmind.model.loading import quantize_linears

    modules = nn.ModuleList([copy.deepcopy(m) for m in layer] + [copy.deepcopy(head)]).to(getattr(torch, plan.dtype))
    if plan.quantization != "none":
        quantize_linears(modules, plan.quantization, plan.device)
        use_dense_prefill(modules)
    return list(modules[:-1]), modules[-1]


def _thread_options(cores: int) -> list[int]:
    return sorted({cores, max(1, cores // 2)}, reverse=True)


def tune(model: Any, choice: ModelChoice, hardware: Hardware, weights_bytes: int,
         callback: Progress | None = None) -> PlanRecord:
    """Measure the candidates on ``model`` (the unquantized model, any dtype) and return the plan record."""
    import torch

    started = time.perf_counter()
    deadline = started + BUDGET_SECONDS
    plans = candidates(choice, hardware, weights_bytes)
    threads_options = _thread_options(hardware.cpu_cores)
    layers = model.config.num_hidden_layers
    layer, head = _linears(model)
    steps = len(threads_options) * (len(plans) + 1)
    speeds: list[FormatSpeed] = []
    previous_threads = torch.get_num_threads()
    try:
        _report(TUNING_MESSAGE, 0.0, callback)
        done = 0
        for threads in threads_options:
            if speeds and time.perf_counter() > started + BUDGET_SECONDS / 2:
                break  # the second thread count only while time remains
            torch.set_num_threads(threads)
            whole_decode, whole_prefill = _time_model(model, PREFILL_TOKENS, deadline)
            base = _time_linears(layer, head, PREFILL_TOKENS, deadline)
            rest_decode = max(0.0, whole_decode - layers * base[0] - base[2])
            rest_prefill = max(0.0, whole_prefill - layers * base[1] - base[2])
            done += 1
            for plan in plans:
                _report(f"Tuning for this computer: {plan.quantization if plan.quantization != 'none' else plan.dtype}"
                        f", {threads} threads…", done / steps, callback)
                copy_layer, copy_head = _format_copy(layer, head, plan)
                dec, pre, head_s = _time_linears(copy_layer, copy_head, PREFILL_TOKENS, deadline)
                del copy_layer, copy_head
                speeds.append(FormatSpeed(plan.dtype, plan.quantization, threads,
                                          round(1 / (layers * dec + head_s + rest_decode), 2),
                                          round(PREFILL_TOKENS / (layers * pre + head_s + rest_prefill), 1)))
                done += 1
    finally:
        torch.set_num_threads(previous_threads)
        _report("Tuning done", 1.0, callback, active=False)
    speeds.sort(key=lambda s: s.answer_seconds)
    best = speeds[0]
    ranking = [s for s in speeds if s.threads == best.threads]
    seconds = round(time.perf_counter() - started, 1)
    log.info("measured plan for %s: %s/%s, %d threads, %.1f tok/s decode, %.0f tok/s prefill (%.1f s tuning)",
             choice.name, best.dtype, best.quantization, best.threads, best.decode_tok_s, best.prefill_tok_s, seconds)
    return PlanRecord(
        key=record_key(choice, hardware), model=choice.name, cpu=cpu_model_name(), cores=hardware.cpu_cores,
        threads=best.threads, dtype=best.dtype, quantization=best.quantization, decode_tok_s=best.decode_tok_s,
        prefill_tok_s=best.prefill_tok_s, answer_seconds=round(best.answer_seconds, 2), tuning_seconds=seconds,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        candidates=[s.to_dict() for s in ranking])


def adopt(record: PlanRecord, plan: LoadPlan) -> PlanRecord:
    """``record`` with the plan the loader finally used (after the quality guard) and its measured speed."""
    chosen = next((c for c in record.candidates if (c["dtype"], c["quantization"]) == (plan.dtype, plan.quantization)),
                  None)
    updated = copy.deepcopy(record)
    updated.dtype, updated.quantization = plan.dtype, plan.quantization
    if chosen:
        updated.decode_tok_s, updated.prefill_tok_s = chosen["decode_tok_s"], chosen["prefill_tok_s"]
        updated.answer_seconds = chosen["answer_seconds"]
    return updated

