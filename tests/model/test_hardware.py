"""Hardware detection and the plan (model, dtype, TorchAO config) it leads to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from docmind.config import load_settings
from docmind.model.errors import InsufficientMemoryError
from docmind.model import speed
from docmind.model.hardware import (
    Hardware,
    check_memory,
    detect_hardware,
    model_fit,
    plan_for,
    recommend,
)
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
    gpu = Hardware(device="cuda", device_name="RTX", cpu_cores=8, ram_total=32 * GB, ram_available=30 * GB,
                   vram_total=8 * GB)
    assert recommend(gpu).spec.hub_id == "Qwen/Qwen3-4B-Thinking-2507"
    assert recommend(gpu).plan.quantization == "int4-weight" and recommend(gpu).plan.device == "cuda"
    assert "best model this computer can run" in recommend(gpu).reason
    assert recommend(_cpu(3.5)).spec.hub_id == "Qwen/Qwen3-1.7B"
    assert recommend(_cpu(3.5)).plan.quantization == "int8-weight"
    assert recommend(_cpu(1)).spec.hub_id == "Qwen/Qwen3-0.6B"
    assert "little free memory" in recommend(_cpu(1)).reason


def test_recommendation_follows_speed_not_only_memory() -> None:
    """On a 2-core CPU the 8 GB thinking model fits but takes minutes per answer: the 1.7B is offered."""
    two_cores = Hardware(device="cpu", device_name="x86_64", cpu_cores=2, ram_total=24 * GB, ram_available=20 * GB)
    advice = recommend(two_cores)
    assert advice.spec.hub_id == "Qwen/Qwen3-1.7B" and advice.plan.quantization == "none"
    assert advice.fit.answer_seconds <= speed.REASONABLE_ANSWER_SECONDS
    assert advice.reason == ("Qwen3 1.7B answers in about 50 seconds on this computer; Qwen3 4B Thinking would "
                             "fit too, but an answer would take about 6 minutes")
    thinking = model_fit(get_spec("Qwen/Qwen3-4B-Thinking-2507"), two_cores)
    assert thinking.fits and thinking.answer_seconds > speed.REASONABLE_ANSWER_SECONDS


def test_speed_estimate_matches_what_was_measured_on_two_cores() -> None:
    """The figures the estimate is derived from: 0.6B shape 10-16 tok/s, 4B shape ~2.5 tok/s (bf16, 2 cores)."""
    small = speed.decode_tokens_per_second(get_spec("Qwen/Qwen3-0.6B").download_bytes, "cpu", 2)
    large = speed.decode_tokens_per_second(get_spec("Qwen/Qwen3-4B-Thinking-2507").download_bytes, "cpu", 2)
    assert 10 <= small <= 16 and 2.0 <= large <= 3.0
    assert speed.decode_tokens_per_second(10**9, "cpu", 2, "int8-weight") < speed.decode_tokens_per_second(
        10**9, "cpu", 2)  # int8 weight-only measured slower than bf16 on CPU
    assert speed.decode_tokens_per_second(10**9, "cpu", 64) == speed.decode_tokens_per_second(10**9, "cpu", 8)
    assert speed.describe_seconds(50) == "about 50 seconds" and speed.describe_seconds(340) == "about 6 minutes"


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
