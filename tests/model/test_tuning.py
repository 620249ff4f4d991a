"""int4 on CPU, the plan measured on this machine (recorded, reused, re-measured), and the quality guard.

The tiny model here (``int4_model_dir``) has hidden size 128 so that int4's group size of 128 applies to its
linear layers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from docmind.config import load_settings
from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.hardware import detect_hardware
from docmind.model.loading import load_model
from docmind.model.registry import resolve_model
from docmind.model.hardware import Hardware
from docmind.model.tuning import PlanRecord, candidates, progress, read_record, write_record
from tests.fixtures.plan_record import record_plan

GB = 1024**3


def _tokens(loaded) -> tuple[int, ...]:
    engine = GenerationEngine(loaded.model, loaded.tokenizer)
    try:
        prompt = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
        return engine.generate(GenerationRequest(prompt, max_new_tokens=12, stop_token_ids=(-1,))).token_ids
    finally:
        engine.shutdown()


def _status(model_dir: Path, data_dir: Path, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "docmind", "model", "status", "--json"], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "DOCMIND_MODEL_PATH": str(model_dir), "DOCMIND_DATA_DIR": str(data_dir),
                              **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_int4_on_cpu_is_cached_reloaded_and_quality_checked(int4_model_dir: Path, tmp_path: Path) -> None:
    from torchao.prototype.quantization.int4 import Int4OpaqueTensor

    settings = load_settings(data_dir=tmp_path, model_path=int4_model_dir, quantization="int4-weight")
    first = load_model(settings)
    assert first.plan.device == "cpu" and first.plan.quantization == "int4-weight" and first.cache_hit is False
    assert isinstance(first.model.model.layers[0].mlp.up_proj.weight, Int4OpaqueTensor)
    assert first.quality is not None and first.quality.quantization == "int4-weight"
    assert 0 <= first.quality.top1_agreement <= 1 and first.quality.mean_kl >= 0 and first.quality.positions > 50

    second = load_model(settings)
    assert second.cache_hit is True and second.quantized_cache == first.quantized_cache
    assert isinstance(second.model.model.layers[1].mlp.down_proj.weight, Int4OpaqueTensor)
    assert second.quality == first.quality
    assert _tokens(first) == _tokens(second)

    status = _status(int4_model_dir, tmp_path, DOCMIND_QUANTIZATION="int4-weight")
    assert status["quality"]["top1_agreement"] == first.quality.top1_agreement
    assert status["measured_plan"] is None and "int4-weight" in status["plan"]


def test_a_fresh_process_reloads_the_int4_cache(int4_model_dir: Path, tmp_path: Path) -> None:
    """The cache holds torchao's int4 tensor type, which ``torch.load(weights_only=True)`` accepts only once its
    module is imported: a new process (every app start) used to find the cache unusable and quantize again."""
    load = ("import sys; from pathlib import Path; from docmind.config import load_settings; "
            "from docmind.model.loading import load_model; "
            f"m = load_model(load_settings(data_dir=Path(sys.argv[1]), model_path=Path({str(int4_model_dir)!r}), "
            "quantization='int4-weight')); print(m.cache_hit)")
    hits = [subprocess.run([sys.executable, "-c", load, str(tmp_path)], capture_output=True, text=True, timeout=300,
                           check=True).stdout.split()[-1] for _ in range(2)]
    assert hits == ["False", "True"]


def test_the_plan_is_measured_once_and_measured_again_when_model_or_cpu_change(
        int4_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(int4_model_dir, model_dir)
    settings = load_settings(data_dir=tmp_path / "data", model_path=model_dir, quantization="auto",
                             tune_min_weights_bytes=0, quantization_min_agreement=0.0)
    steps: list[tuple[str, float]] = []

    seen_active: list[bool] = []

    def on_progress(message: str, fraction: float) -> None:
        steps.append((message, fraction))
        seen_active.append(progress().active)

    first = load_model(settings, progress=on_progress)
    assert steps[0] == ("Tuning for this computer…", 0.0) and steps[-1][1] == 1.0
    assert all(seen_active[:-1]) and seen_active[-1] is False and progress().active is False
    record = first.measured_plan
    assert record is not None and (record.dtype, record.quantization) == (first.plan.dtype, first.plan.quantization)
    formats = {(c["dtype"], c["quantization"]) for c in record.candidates}
    assert {("bfloat16", "none"), ("bfloat16", "int8-weight"), ("bfloat16", "int4-weight")} <= formats
    assert record.decode_tok_s > 0 and record.prefill_tok_s > 0 and record.threads >= 1
    assert record.candidates[0]["answer_seconds"] == min(c["answer_seconds"] for c in record.candidates)
    assert read_record(settings, resolve_model(settings), detect_hardware()) == record

    status = _status(model_dir, tmp_path / "data")
    assert status["measured_plan"]["quantization"] == record.quantization
    assert status["measured_plan"]["decode_tok_s"] == record.decode_tok_s
    assert {"cpu", "threads", "prefill_tok_s", "measured_at", "tuning_seconds"} <= set(status["measured_plan"])

    steps.clear()
    again = load_model(settings, progress=lambda message, fraction: steps.append((message, fraction)))
    assert steps == [] and again.plan == first.plan and again.measured_plan == record

    monkeypatch.setattr("docmind.model.tuning.cpu_model_name", lambda: "Another CPU 9000")
    load_model(settings, progress=lambda message, fraction: steps.append((message, fraction)))
    assert steps and steps[0][0] == "Tuning for this computer…"
    monkeypatch.undo()

    steps.clear()
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # the same model downloaded again: new file time
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    load_model(settings, progress=lambda message, fraction: steps.append((message, fraction)))
    assert steps and steps[0][0] == "Tuning for this computer…"


def test_quality_guard_falls_back_to_the_next_format(int4_model_dir: Path, tmp_path: Path) -> None:
    """With an agreement threshold no quantization can reach, the loader walks the measured ranking down
    to the unquantized model and records what it refused."""
    import torch

    settings = load_settings(data_dir=tmp_path, model_path=int4_model_dir, quantization="auto",
                             tune_min_weights_bytes=0, quantization_min_agreement=1.01)
    choice, hardware = resolve_model(settings), detect_hardware()
    record_plan(settings, [("bfloat16", "int4-weight", 30.0), ("bfloat16", "int8-weight", 20.0),
                           ("bfloat16", "none", 10.0)])

    loaded = load_model(settings)
    assert loaded.plan.quantization == "none" and loaded.quantized_cache is None and loaded.quality is None
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert len(_tokens(loaded)) == 12
    record = read_record(settings, choice, hardware)
    assert record.quantization == "none" and record.decode_tok_s == 10.0
    assert [r["quantization"] for r in record.rejected] == ["int4-weight", "int8-weight"]
    assert all(not r["passed"] and r["min_agreement"] == 1.01 for r in record.rejected)

    passing = load_settings(data_dir=tmp_path / "other", model_path=int4_model_dir, quantization="auto",
                            tune_min_weights_bytes=0, quantization_min_agreement=0.0)
    write_record(passing, choice, PlanRecord(**{**record.__dict__, "quantization": "int4-weight", "rejected": []}))
    kept = load_model(passing)
    assert kept.plan.quantization == "int4-weight" and kept.quality.passed


def test_candidates_are_the_formats_that_fit_in_free_ram(int4_model_dir: Path, tmp_path: Path) -> None:
    choice = resolve_model(load_settings(data_dir=tmp_path, model_path=int4_model_dir))

    def machine(free_gb: float) -> Hardware:
        return Hardware(device="cpu", device_name="x", cpu_cores=4, ram_total=64 * GB, ram_available=int(free_gb * GB))

    roomy = {(p.dtype, p.quantization) for p in candidates(choice, machine(32), 8 * GB)}
    assert {("bfloat16", "none"), ("bfloat16", "int8-weight"), ("bfloat16", "int4-weight")} <= roomy
    assert {(p.dtype, p.quantization) for p in candidates(choice, machine(6), 8 * GB)} == {
        ("bfloat16", "int8-weight"), ("bfloat16", "int4-weight")}
    assert [(p.dtype, p.quantization) for p in candidates(choice, machine(4.5), 8 * GB)] == [
        ("bfloat16", "int4-weight")]


def test_model_status_json_gives_the_thinking_budget_at_the_measured_speed(int4_model_dir: Path,
                                                                           tmp_path: Path) -> None:
    """``thinking_budget`` is a new key (the others keep their names): estimated from the model's size until a
    plan is measured, then 20 s at the recorded decode speed; the setting wins over both."""
    before = _status(int4_model_dir, tmp_path)
    assert before["thinking_budget"]["measured"] is False and before["measured_plan"] is None
    assert 128 <= before["thinking_budget"]["tokens"] <= 2048

    settings = load_settings(data_dir=tmp_path, model_path=int4_model_dir, quantization="auto")
    record_plan(settings, [("bfloat16", "int4-weight", 25.0), ("bfloat16", "none", 10.0)])
    after = _status(int4_model_dir, tmp_path)
    assert after["thinking_budget"] == {"tokens": 500, "seconds": 20.0, "decode_tok_s": 25.0, "measured": True}
    assert set(before) == set(after) and {"measured_plan", "quality", "plan", "device", "thinks"} <= set(after)
    assert after["measured_plan"]["decode_tok_s"] == 25.0

    fixed = _status(int4_model_dir, tmp_path, DOCMIND_THINKING_BUDGET="300")
    assert fixed["thinking_budget"] == {"tokens": 300, "seconds": 12.0, "decode_tok_s": 25.0, "measured": True}
