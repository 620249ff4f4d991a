"""Hardware detection and the plan (model, dtype, TorchAO config) it leads to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from docmind.config import load_settings
from docmind.model.errors import InsufficientMemoryError
from docmind.model.hardware import Hardware, check_memory, detect_hardware, plan_for, recommend
from docmind.model.registry import DEFAULT_MODEL_ID, MODELS, get_spec, resolve_model

GB = 1024**3


def _cpu(ram_gb: float) -> Hardware:
    return Hardware(device="cpu", device_name="x86_64", cpu_cores=4, ram_total=int(ram_gb * GB) + GB,
                    ram_available=int(ram_gb * GB))


def test_detects_this_cpu_machine_without_importing_torch() -> None:
    code = ("import sys; from docmind.model.hardware import detect_hardware; h = detect_hardware(); "
            "print(h.device, h.cpu_cores, h.ram_total > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["cpu", str(detect_hardware().cpu_cores), "True", "False"], out.stderr
    assert "cpu" in detect_hardware().summary and "GB RAM" in detect_hardware().summary


def test_registry_and_model_choice(tmp_path) -> None:
    assert DEFAULT_MODEL_ID == "Qwen/Qwen3-4B-Thinking-2507" and get_spec(DEFAULT_MODEL_ID).thinks
    assert [m.hub_id for m in MODELS][1:] == ["Qwen/Qwen3-1.7B", "Qwen/Qwen3-0.6B"]
    hub = resolve_model(load_settings(data_dir=tmp_path, model="Qwen/Qwen3-1.7B", model_path=None))
    assert not hub.local and hub.path == tmp_path / "models" / "Qwen--Qwen3-1.7B" and hub.spec.params_b == 1.7
    local = resolve_model(load_settings(data_dir=tmp_path, model="Qwen/Qwen3-1.7B", model_path=tmp_path / "m"))
    assert local.local and local.path == tmp_path / "m" and local.spec is None


def test_recommendation_follows_memory() -> None:
    assert recommend(_cpu(16)).spec.hub_id == "Qwen/Qwen3-4B-Thinking-2507"
    assert recommend(_cpu(16)).plan.quantization == "none"
    tight = recommend(_cpu(7))
    assert tight.spec.hub_id == "Qwen/Qwen3-4B-Thinking-2507" and tight.plan.quantization == "int8-weight"
    assert "int8" in tight.plan.reason
    assert recommend(_cpu(3.5)).spec.hub_id == "Qwen/Qwen3-1.7B"
    assert recommend(_cpu(1)).spec.hub_id == "Qwen/Qwen3-0.6B"
    gpu = Hardware(device="cuda", device_name="RTX", cpu_cores=8, ram_total=32 * GB, ram_available=30 * GB,
                   vram_total=8 * GB)
    assert recommend(gpu).plan.quantization == "int4-weight" and recommend(gpu).plan.device == "cuda"


def test_not_enough_ram_suggests_a_smaller_model() -> None:
    spec = get_spec("Qwen/Qwen3-4B-Thinking-2507")
    plan = plan_for(spec, _cpu(3.5), quantization="none")
    expected = r"needs about 11.0 GB .* has 3.5 GB.*DOCMIND_MODEL=Qwen/Qwen3-1.7B"
    with pytest.raises(InsufficientMemoryError, match=expected):
        check_memory(spec, plan, _cpu(3.5))
    with pytest.raises(InsufficientMemoryError, match="No listed model fits"):
        check_memory(spec, plan, _cpu(0.5))
    check_memory(spec, plan, _cpu(12))


def test_quantization_setting_is_validated() -> None:
    assert plan_for(None, _cpu(16), "int8-dynamic", weights_bytes=GB).quantization == "int8-dynamic"
    with pytest.raises(ValueError, match="Unknown quantization"):
        plan_for(None, _cpu(16), "int3")


def test_model_status_for_a_local_model_without_importing_torch(tiny_model_dir, data_dir) -> None:
    import json
    import os

    env = dict(os.environ, DOCMIND_MODEL_PATH=str(tiny_model_dir))
    code = ("import sys; from docmind.cli import main; rc = main(['model', 'status', '--json']); "
            "print('torch' in sys.modules, file=sys.stderr); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["state"] == "ready" and status["local"] is True and status["model"] == str(tiny_model_dir)
    assert status["recommended_model"] in [m.hub_id for m in MODELS] and "cpu" in status["device"]
    assert out.stderr.strip().splitlines()[-1] == "False"
    refused = subprocess.run([sys.executable, "-m", "docmind", "model", "download"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "nothing to download" in refused.stderr
