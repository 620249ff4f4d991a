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

from docmind._weights_lock import weights_load_lock
from docmind.config import Settings
from docmind.model.errors import ModelCorruptError, ModelNotDownloadedError
from docmind.model.hardware import Hardware, LoadPlan, check_memory, detect_hardware, plan_for
from docmind.model.registry import ModelChoice, resolve_model

log = logging.getLogger(__name__)

MANIFEST = "docmind-manifest.json"


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


def _quant_config(name: str) -> Any:
    from torchao.quantization import (
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
    )

    return {"int8-weight": Int8WeightOnlyConfig, "int8-dynamic": Int8DynamicActivationInt8WeightConfig,
            # tinygemm (torch's own _weight_int4pack_mm, CUDA sm80+); the default "plain" format needs mslk
            "int4-weight": lambda: Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d"),
            }[name]()


def quantize_model(model: Any, quantization: str) -> None:
    """Quantize linear layers (and, for int8, the embedding, keeping it tied to ``lm_head``) in place."""
    import torch.nn as nn
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    quantize_(model, _quant_config(quantization),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and not (tied and m is head))
    if quantization.startswith("int8"):
        quantize_(embed, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    elif tied:
        quantize_(head, _quant_config(quantization), filter_fn=lambda m, fqn: m is head)
        return
    if tied:
        head.weight = embed.weight


def quantized_cache_path(settings: Settings, choice: ModelChoice, plan: LoadPlan) -> Path:
    """Where the quantized weights of this model/plan/library combination are cached."""
    import torch
    import torchao

    files = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in choice.path.glob("*.safetensors"))
    manifest = choice.path / MANIFEST
    identity = {"model": choice.name, "files": files, "quantization": plan.quantization, "dtype": plan.dtype,
                "device": plan.device, "torch": torch.__version__, "torchao": torchao.__version__,
                "manifest": manifest.read_text() if manifest.is_file() else None}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return settings.data_dir / "models" / "quantized" / f"{plan.quantization}-{key}.pt"


def _model_from_cache(path: Path, cache: Path, plan: LoadPlan) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    saved = torch.load(cache, weights_only=True, mmap=True, map_location=_torch_device(plan))
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, plan.dtype))
    model.load_state_dict(saved["state_dict"], assign=True, strict=True)
    for name, buffer in saved["buffers"].items():
        owner, _, attr = name.rpartition(".")
        model.get_submodule(owner).register_buffer(attr, buffer, persistent=False)
    if model.config.tie_word_embeddings and model.get_output_embeddings() is not None:
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
    torch.save({"state_dict": model.state_dict(), "buffers": buffers}, tmp)
    os.replace(tmp, cache)
    for old in cache.parent.glob(f"{cache.name.split('-')[0]}-*.pt"):
        if old != cache and old.stat().st_mtime < cache.stat().st_mtime - 1:
            log.info("removing outdated quantized cache %s", old)
            old.unlink(missing_ok=True)


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
    return {"cuda": "cuda", "mps": "mps"}.get(plan.device, "cpu")


def load_model(settings: Settings, *, hardware: Hardware | None = None, plan: LoadPlan | None = None) -> LoadedModel:
    """Check, plan and load the model that settings choose; quantize it (or reuse the cached quantization)."""
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    started = time.perf_counter()
    choice = resolve_model(settings)
    check_model_files(choice)
    hardware = hardware or detect_hardware()
    size = weights_bytes(choice.path)
    plan = plan or plan_for(choice.spec, hardware, settings.quantization, size)
    check_memory(choice.spec, plan, hardware, size)
    log.info("loading %s on %s (%s, quantization %s): %s", choice.name, plan.device, plan.dtype,
             plan.quantization, plan.reason)

    import torch
    from llama_index.llms.huggingface import HuggingFaceLLM

    with weights_load_lock:  # another load at the same time would mix dtypes (see _weights_lock)
        cache = quantized_cache_path(settings, choice, plan) if plan.quantization != "none" else None
        model, cache_hit = None, False
        if cache is not None and cache.is_file():
            try:
                model, cache_hit = _model_from_cache(choice.path, cache, plan), True
            except Exception as error:  # noqa: BLE001 - a stale or damaged cache is rebuilt
                log.warning("quantized cache %s unusable (%s); quantizing again", cache, error)
                cache.unlink(missing_ok=True)
        config_window = json.loads((choice.path / "config.json").read_text()).get("max_position_embeddings") or 32768
        window = min(choice.spec.context_window, config_window) if choice.spec else config_window
        try:
            llm = HuggingFaceLLM(
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
        model, tokenizer = llm._model, llm._tokenizer
        if cache is not None and not cache_hit:
            quantize_model(model, plan.quantization)
            _save_cache(model, cache)
            _return_freed_memory()
    if cache is not None and plan.device == "cpu":
        _reuse_freed_memory()
    model.eval()
    seconds = time.perf_counter() - started
    log.info("model ready in %.1f s (quantized cache %s)", seconds, "hit" if cache_hit else "miss")
    return LoadedModel(choice, plan, model, tokenizer, llm, cache, cache_hit, seconds)
