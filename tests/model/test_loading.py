"""Loading through HuggingFaceLLM: TorchAO quantization cached on disk, clear errors for bad model dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docmind.config import load_settings
from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.errors import InsufficientMemoryError, ModelCorruptError, ModelNotDownloadedError
from docmind.model.hardware import Hardware
from docmind.model.loading import load_model
from docmind.model.runtime import model_ready

GB = 1024**3


def _tokens(loaded, prompt: str = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n") -> tuple[int, ...]:
    engine = GenerationEngine(loaded.model, loaded.tokenizer)
    try:
        return engine.generate(GenerationRequest(prompt, max_new_tokens=12, stop_token_ids=(-1,))).token_ids
    finally:
        engine.shutdown()


def test_int8_quantization_is_cached_and_reloaded(tiny_model_dir: Path, tmp_path: Path) -> None:
    from torchao.quantization import Int8Tensor

    settings = load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="int8-weight")
    first = load_model(settings)
    assert first.cache_hit is False and first.quantized_cache is not None and first.quantized_cache.is_file()
    assert isinstance(first.model.model.layers[0].mlp.up_proj.weight, Int8Tensor)
    assert isinstance(first.model.get_input_embeddings().weight, Int8Tensor)
    assert first.plan.quantization == "int8-weight"

    second = load_model(settings)
    assert second.cache_hit is True and second.quantized_cache == first.quantized_cache
    assert isinstance(second.model.lm_head.weight, Int8Tensor)
    assert _tokens(first) == _tokens(second)
    assert len(list(first.quantized_cache.parent.glob("*.pt"))) == 1 and first.quality.quantization == "int8-weight"

    other = load_model(load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="int8-dynamic"))
    assert other.cache_hit is False and other.quantized_cache != first.quantized_cache


def test_unquantized_bf16_load_uses_no_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    loaded = load_model(load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="none"))
    assert loaded.quantized_cache is None and loaded.model.dtype == torch.bfloat16
    assert loaded.hf_llm._model is loaded.model
    assert len(_tokens(loaded)) == 12


def test_truncated_weights_give_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    settings = load_settings(data_dir=tmp_path / "data", model_path=broken)
    with pytest.raises(ModelCorruptError, match=r"model.safetensors .* truncated .*DOCMIND_MODEL_PATH"):
        load_model(settings)
    assert model_ready(settings) is False
    out = subprocess.run([sys.executable, "-m", "docmind", "model", "verify"], capture_output=True, text=True,
                         env={**__import__("os").environ, "DOCMIND_MODEL_PATH": str(broken),
                              "DOCMIND_DATA_DIR": str(tmp_path / "data")}, timeout=60)
    assert out.returncode == 1 and "truncated" in out.stdout


def test_garbage_weights_give_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ModelCorruptError, match="damaged"):
        load_model(load_settings(data_dir=tmp_path / "data", model_path=broken))


def test_missing_model_points_to_download(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, model="Qwen/Qwen3-0.6B", model_path=None)
    assert model_ready(settings) is False
    with pytest.raises(ModelNotDownloadedError, match="docmind model download"):
        load_model(settings)
    with pytest.raises(ModelNotDownloadedError, match="no config.json"):
        load_model(load_settings(data_dir=tmp_path, model_path=tmp_path / "nowhere"))


def test_too_little_ram_refuses_before_loading(tiny_model_dir: Path, tmp_path: Path) -> None:
    small = Hardware(device="cpu", device_name="x86", cpu_cores=2, ram_total=GB, ram_available=1000)
    with pytest.raises(InsufficientMemoryError, match="needs about .* this machine has"):
        load_model(load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="none"), hardware=small)


def test_runtime_installs_the_engine_llm_as_llamaindex_llm(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llama_index.core import Settings as LlamaSettings

    from docmind.model.llm import EngineLLM
    from docmind.model.runtime import get_engine, get_llm, get_runtime, unload

    settings = load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="none")
    try:
        runtime = get_runtime(settings)
        assert get_engine(settings) is runtime.engine and get_llm(settings) is runtime.llm
        assert isinstance(LlamaSettings.llm, EngineLLM) and LlamaSettings.llm is runtime.llm
    finally:
        unload()


def test_a_model_load_and_an_embedding_load_at_once_keep_the_planned_dtype(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    """transformers sets torch's process-wide default dtype while it loads; two loads at once mixed bf16 and
    fp32 weights in one model (4 of 6 tries before the lock), and every generation then failed."""
    import threading

    import torch

    from docmind.cache import embeddings

    settings = load_settings(data_dir=tmp_path, model_path=tiny_model_dir, quantization="none")
    for _ in range(3):
        embeddings._load.cache_clear()
        start = threading.Barrier(2)
        loaded = {}

        def load_llm() -> None:
            start.wait()
            loaded["llm"] = load_model(settings)

        def load_embedder() -> None:
            start.wait()
            loaded["embedder"] = embeddings.load_embed_model(embeddings.default_embed_model_path())

        threads = [threading.Thread(target=load_llm), threading.Thread(target=load_embedder)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        planned = getattr(torch, loaded["llm"].plan.dtype)
        assert {p.dtype for p in loaded["llm"].model.parameters()} == {planned}
        assert loaded["embedder"].get_text_embedding("a sentence")


def test_model_loading_never_fetches_hub_kernels() -> None:
    """On a GPU, transformers would fetch compiled kernels from the Hub at load time (fails offline)."""
    env = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    code = ("import docmind.model.loading\n"
            "from transformers.integrations.hub_kernels import _kernels_enabled\n"
            "print(_kernels_enabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
