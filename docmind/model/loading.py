"""Load the chosen model through LlamaIndex's ``HuggingFaceLLM``, quantized with TorchAO when planned.

The first start quantizes the bf16 weights and writes them to ``<data dir>/models/quantized/<key>.pt``;
the key covers the model files, the quantization, the dtype and the torch/torchao versions, so later
starts load the quantized weights directly and skip quantization.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmind._torch_process import weights_load_lock
from docmind.config import Settings
from docmind.model.errors import ModelCorruptError, ModelNotDownloadedError
from docmind.model.hardware import Hardware, LoadPlan, check_memory, detect_hardware, plan_for
from docmind.model.quality import QualityReport
from docmind.model.registry import ModelChoice, resolve_model
from docmind.model.tuning import PlanRecord, Progress, adopt, read_record, tune, write_record

log = logging.getLogger(__name__)

MANIFEST = "docmind-manifest.json"
INT4_GROUP_SIZE = 128


@dataclass
class LoadedModel:
    """A model in memory with its tokenizer, and how it got there."""

    choice: ModelChoice
    plan: LoadPlan
    model: Any
    tokenizer: Any
    hf_llm: Any
    """The ``HuggingFaceLLM`` that loaded it (its model and tokenizer are the ones above)."""
    quantized_cache: Path | None
    cache_hit: bool
    seconds: float
    measured_plan: PlanRecord | None = None
    """The plan measured on this computer (CPU, ``quantization = "auto"``), or None."""
    quality: QualityReport | None = None
    """How closely the quantized weights follow the unquantized model, or None when unquantized."""

    @property
    def decode_tok_s(self) -> float | None:
        """Decode speed measured on this computer (batch 1), or None when the plan was not measured."""
        return self.measured_plan.decode_tok_s if self.measured_plan is not None else None


def weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors"))


def _repair_hint(choice: ModelChoice) -> str:
    if choice.local:
        return "Replace the damaged file or point DOCMIND_MODEL_PATH at a complete model directory."
    return "Run `docmind model verify` to find damaged files, then `docmind model download` to fetch them again."


def check_model_files(choice: ModelChoice) -> None:
    """Cheap start-up check: config, tokenizer and complete safetensors files (sizes from their headers)."""
    path = choice.path
    if not (path / "config.json").is_file():
        if choice.local:
            raise ModelNotDownloadedError(f"No model found in {path} (DOCMIND_MODEL_PATH): it has no config.json. "
                                          "Point it at a folder holding a model's config.json and weights, "
                                          "or unset it to download a model.")
        raise ModelNotDownloadedError(f"The model {choice.name} is not downloaded yet. "
                                      "Run `docmind model download` (or use the app's first-run screen).")
    if not choice.local and not (path / MANIFEST).is_file():
        raise ModelNotDownloadedError(f"The download of {choice.name} did not finish. "
                                      "Run `docmind model download` to resume it.")
    if (path / MANIFEST).is_file():
        for entry in json.loads((path / MANIFEST).read_text())["files"]:
            file = path / entry["name"]
            if not file.is_file() or file.stat().st_size != entry["size"]:
                raise ModelCorruptError(f"{entry['name']} of {choice.name} is missing or incomplete. "
                                        "Run `docmind model download` to fetch it again.")
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        raise ModelCorruptError(f"{path} has no .safetensors weights. {_repair_hint(choice)}")
    for shard in shards:
        problem = safetensors_problem(shard)
        if problem:
            raise ModelCorruptError(f"{shard.name} in {path} is damaged: {problem}. {_repair_hint(choice)}")


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is unusable (bad header, truncated), or None when its size is consistent."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                return f"truncated ({size} bytes, its header alone claims {header_len})"
            header = json.loads(f.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError):
        return "not a valid safetensors file"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    expected = 8 + header_len + end
    if size != expected:
        return f"truncated ({size} of {expected} bytes)" if size < expected else f"{size - expected} extra bytes"
    return None


def _quant_config(name: str, device: str) -> Any:
    from torchao.quantization import (
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
    )

    if name == "int4-weight" and device == "cpu":
        # torch's own CPU int4 kernel (_weight_int4pack_mm_for_cpu) through TorchAO's CPU packing
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

        return PrototypeInt4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, set_inductor_config=False)
    return {"int8-weight": Int8WeightOnlyConfig, "int8-dynamic": Int8DynamicActivationInt8WeightConfig,
            # tinygemm (torch's own _weight_int4pack_mm, CUDA sm80+); the default "plain" format needs mslk
            "int4-weight": lambda: Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE,
                                                        int4_packing_format="tile_packed_to_4d"),
            }[name]()


def _quantizable(module: Any, quantization: str) -> bool:
    """Whether ``module`` is a linear layer the format can pack (int4: input width a multiple of the group
    size, output width of 16; the others stay unquantized)."""
    import torch.nn as nn

    if not isinstance(module, nn.Linear):
        return False
    return quantization != "int4-weight" or (module.in_features % INT4_GROUP_SIZE == 0
                                              and module.out_features % 16 == 0)


def quantize_linears(module: Any, quantization: str, device: str) -> None:
    """Quantize every linear layer of ``module`` that the format can pack, in place."""
    from torchao.quantization import quantize_

    quantize_(module, _quant_config(quantization, device), filter_fn=lambda m, fqn: _quantizable(m, quantization))


def quantize_model(model: Any, quantization: str, device: str = "cpu") -> None:
    """Quantize linear layers and the output layer in place; for int8 also the embedding, kept tied to
    ``lm_head``. For int4 a tied embedding stays in its dtype (a lookup reads one row per token) and the
    output layer gets its own int4 copy: the output layer is read whole every step, the biggest single
    matrix of small models (151,936 x 1,024 on Qwen3-0.6B). Measured for that matrix, one token, 2 threads
    on the shared 2-core EPYC: bf16 212 ms, int8 weight-only 1,774 ms (it dequantizes), int4 54 ms."""
    import torch.nn as nn
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    quantize_(model, _quant_config(quantization, device),
              filter_fn=lambda m, fqn: _quantizable(m, quantization) and not (tied and m is head))
    if quantization.startswith("int8"):
        quantize_(embed, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    elif tied:
        quantize_(head, _quant_config(quantization, device),
                  filter_fn=lambda m, fqn: m is head and _quantizable(m, quantization))
        return
    if tied:
        head.weight = embed.weight


def quantized_cache_path(settings: Settings, choice: ModelChoice, plan: LoadPlan) -> Path:
    """Where the quantized weights of this model/plan/library combination are cached (imports no torch)."""
    from importlib.metadata import version

    files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in choice.path.glob("*.safetensors"))
    manifest = choice.path / MANIFEST
    identity = {"model": choice.name, "files": files, "quantization": plan.quantization, "dtype": plan.dtype,
                "device": plan.device, "torch": version("torch"), "torchao": version("torchao"),
                "manifest": manifest.read_text() if manifest.is_file() else None}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return settings.data_dir / "models" / "quantized" / f"{plan.quantization}-{key}.pt"


def _model_from_cache(path: Path, cache: Path, plan: LoadPlan) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    _quant_config(plan.quantization, plan.device)  # imports the module that allows its tensor type in weights_only
    saved = torch.load(cache, weights_only=True, mmap=True, map_location=_torch_device(plan))
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, plan.dtype))
    model.load_state_dict(saved["state_dict"], assign=True, strict=True)
    for name, buffer in saved["buffers"].items():
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner).register_buffer(attr, buffer, persistent=False)
    if (model.config.tie_word_embeddings and model.get_output_embeddings() is not None
            and not saved.get("untied_head", False)):
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path, local_files_only=True)
    return model.eval()


def _save_cache(model: Any, cache: Path) -> None:
    import torch

    persistent = set(model.state_dict())
    buffers = {name: b for name, b in model.named_buffers() if name not in persistent}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    head = model.get_output_embeddings()
    untied_head = bool(model.config.tie_word_embeddings and head is not None
                       and head.weight is not model.get_input_embeddings().weight)
    torch.save({"state_dict": model.state_dict(), "buffers": buffers, "untied_head": untied_head}, tmp)
    os.replace(tmp, cache)
    for old in cache.parent.glob(f"{cache.name.split('-')[0]}-*.pt"):
        if old != cache and old.stat().st_mtime < cache.stat().st_mtime - 1:
            log.info("removing outdated quantized cache %s", old)
            old.unlink(missing_ok=True)
            quality_path(old).unlink(missing_ok=True)


def _return_freed_memory() -> None:
    """Hand the freed bf16 weights back to the OS (glibc keeps freed heap memory otherwise)."""
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _reuse_freed_memory() -> None:
    """Keep freed heap memory for reuse (Linux/glibc) while a TorchAO-quantized model runs on CPU.

    The eager int8 path dequantizes weights into fresh buffers every step; by default glibc maps
    them afresh and faults every page in again, and a thread's own arena (the engine runs in one)
    always does so for buffers over 64 MB, like the 311 MB dequantized lm_head. One arena, big
    buffers from the heap, no trimming between steps: on the Qwen3-0.6B shape, 1,244 ms per decode
    step in a thread before, 285 ms after; bf16 is unaffected (93 vs 90 ms). Peak memory is unchanged.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 1)  # M_ARENA_MAX: threads created from now on share the main heap
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve big buffers from the heap
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD: do not hand them back between steps
    except (OSError, AttributeError):
        pass


def _torch_device(plan: LoadPlan) -> str:
    # "cuda:0", not "cuda": TorchAO's int4 tensors loaded onto "cuda" refuse to be assigned to a model
    # on "cuda:0" ("storage on different device"), so the quantized cache was never reused on a GPU.
    return {"cuda": "cuda:0", "mps": "mps"}.get(plan.device, "cpu")


def _hf_llm(choice: ModelChoice, plan: LoadPlan, model: Any | None) -> Any:
    """A ``HuggingFaceLLM`` over ``model``, or over the weights of ``choice`` loaded in ``plan.dtype``."""
    import torch
    from llama_index.llms.huggingface import HuggingFaceLLM

    config_window = json.loads((choice.path / "config.json").read_text()).get("max_position_embeddings") or 32768
    window = min(choice.spec.context_window, config_window) if choice.spec else config_window
    try:
        return HuggingFaceLLM(
            model_name=str(choice.path), tokenizer_name=str(choice.path), model=model,
            device_map=_torch_device(plan) if plan.device != "cpu" else "auto",
            model_kwargs={"dtype": getattr(torch, plan.dtype), "local_files_only": True},
            tokenizer_kwargs={"local_files_only": True},  # offline from here on, like HF_HUB_OFFLINE=1
            context_window=window, is_chat_model=True,
            messages_to_prompt=lambda messages: "\n".join(f"{m.role.value}: {m.content}" for m in messages),
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelCorruptError(f"Could not load the model from {choice.path}: {error}. "
                                f"{_repair_hint(choice)}") from error


@dataclass
class _Outcome:
    llm: Any
    plan: LoadPlan
    quality: QualityReport | None
    rejected: list[dict]


def _apply_first_good(llm: Any, choice: ModelChoice, attempts: list[LoadPlan], min_agreement: float) -> _Outcome:
    """Put ``llm``'s unquantized model into the first of ``attempts`` whose quality passes the guard.

    A quantization below ``min_agreement`` top-1 agreement with the unquantized model is dropped for the
    next attempt (reloading the unquantized weights); the last attempt is kept whatever its quality.
    """
    import torch

    from docmind.model.quality import compare, next_token_log_probs

    reference, rejected, base_dtype = None, [], str(llm._model.dtype).removeprefix("torch.")
    for number, attempt in enumerate(attempts, start=1):
        model = llm._model
        if attempt.quantization == "none":
            if attempt.dtype != base_dtype:
                model.to(getattr(torch, attempt.dtype))
            return _Outcome(llm, attempt, None, rejected)
        if reference is None:
            reference = next_token_log_probs(model, llm._tokenizer)
        quantize_model(model, attempt.quantization, attempt.device)
        report = compare(model, llm._tokenizer, reference, attempt.quantization, min_agreement)
        log.info("quality of %s: top-1 agreement %.3f, mean KL %.4f", attempt.quantization, report.top1_agreement,
                 report.mean_kl)
        if report.passed or number == len(attempts):
            if not report.passed:
                log.warning("%s keeps only %.0f%% of the unquantized model's next-token choices (threshold %.0f%%)",
                            attempt.quantization, report.top1_agreement * 100, min_agreement * 100)
            return _Outcome(llm, attempt, report, rejected)
        log.warning("%s rejected: top-1 agreement %.3f below %.3f; trying %s/%s", attempt.quantization,
                    report.top1_agreement, min_agreement, attempts[number].dtype, attempts[number].quantization)
        rejected.append(report.to_dict())
        del model
        llm = _hf_llm(choice, LoadPlan(attempt.device, base_dtype, "none", "reload"), None)
    raise ValueError("no plan to try")


def quality_path(cache: Path) -> Path:
    """The quality report stored beside a quantized cache."""
    return cache.with_suffix(".quality.json")


def read_quality(cache: Path | None) -> QualityReport | None:
    """The quality report of a quantized cache, or None when there is none."""
    if cache is None:
        return None
    try:
        return QualityReport.from_dict(json.loads(quality_path(cache).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _attempts(plan: LoadPlan, record: PlanRecord | None) -> list[LoadPlan]:
    """``plan`` then, with a measured record, the slower candidates to fall back to."""
    if record is None:
        return [plan]
    ranking = record.ranking()
    start = next((i for i, p in enumerate(ranking) if (p.dtype, p.quantization) == (plan.dtype, plan.quantization)),
                 None)
    return [plan] + (ranking[start + 1:] if start is not None else [])


def load_model(settings: Settings, *, hardware: Hardware | None = None, plan: LoadPlan | None = None,
               progress: Progress | None = None) -> LoadedModel:
    """Check, plan and load the model that settings choose; quantize it (or reuse the cached quantization).

    On CPU with ``quantization = "auto"`` the first load of a model on a machine measures the formats
    (``docmind.model.tuning``; ``progress`` is told what is being measured) and records the result for
    later loads. Fresh quantizations pass the quality guard (``docmind.model.quality``) or fall back.
    """
    started = time.perf_counter()
    choice = resolve_model(settings)
    check_model_files(choice)
    hardware = hardware or detect_hardware()
    size = weights_bytes(choice.path)
    record, measure = None, False
    if plan is None and settings.quantization == "auto" and hardware.device == "cpu" \
            and size >= settings.tune_min_weights_bytes:
        record = read_record(settings, choice, hardware)
        measure = record is None
    if record is not None:
        plan = record.plan()
    elif measure:
        plan = LoadPlan("cpu", "bfloat16", "none", "unquantized, to measure the formats on this computer")
    else:
        plan = plan or plan_for(choice.spec, hardware, settings.quantization, size)
    check_memory(choice.spec, LoadPlan("cpu", "bfloat16", "int4-weight", "smallest") if measure else plan,
                 hardware, size)
    log.info("loading %s on %s (%s, quantization %s): %s", choice.name, plan.device, plan.dtype,
             plan.quantization, plan.reason)

    import torch

    with weights_load_lock:  # another load at the same time would mix dtypes (see _torch_process)
        cache = quantized_cache_path(settings, choice, plan) if plan.quantization != "none" else None
        model, cache_hit, quality = None, False, None
        if cache is not None and cache.is_file():
            try:
                model, cache_hit = _model_from_cache(choice.path, cache, plan), True
                quality = read_quality(cache)
            except Exception as error:  # noqa: BLE001 - a stale or damaged cache is rebuilt
                log.warning("quantized cache %s unusable (%s); quantizing again", cache, error)
                cache.unlink(missing_ok=True)
        llm = _hf_llm(choice, plan, model)
        if model is None:
            if measure:
                record = tune(llm._model, choice, hardware, size, progress)
                plan = record.plan()
            outcome = _apply_first_good(llm, choice, _attempts(plan, record), settings.quantization_min_agreement)
            llm, quality = outcome.llm, outcome.quality
            if record is not None and (measure or outcome.plan != plan):
                record = adopt(record, outcome.plan)
                record.rejected += outcome.rejected
                write_record(settings, choice, record)
            plan = record.plan() if record is not None else outcome.plan
            cache = quantized_cache_path(settings, choice, plan) if plan.quantization != "none" else None
            if cache is not None:
                _save_cache(llm._model, cache)
                quality_path(cache).write_text(json.dumps(quality.to_dict() if quality else None))
            _return_freed_memory()
        model, tokenizer = llm._model, llm._tokenizer
    if record is not None:
        torch.set_num_threads(record.threads)
    if cache is not None and plan.device == "cpu":
        _reuse_freed_memory()
    model.eval()
    seconds = time.perf_counter() - started
    log.info("model ready in %.1f s (quantized cache %s)", seconds, "hit" if cache_hit else "miss")
    return LoadedModel(choice, plan, model, tokenizer, llm, cache, cache_hit, seconds, record, quality)
