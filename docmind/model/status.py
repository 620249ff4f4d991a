"""What the user needs to know about the model: chosen, on disk or not, and what this machine suits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from docmind.config import Settings
from docmind.model.errors import ModelCorruptError, ModelError
from docmind.model.hardware import Hardware, detect_hardware, plan_for, recommend
from docmind.model.loading import check_model_files, quantized_cache_path, read_quality
from docmind.model.registry import resolve_model
from docmind.model.thinking import thinking_budget
from docmind.model.tuning import read_record


@dataclass
class ModelStatus:
    """The chosen model and its state: ``ready``, ``not_downloaded``, ``partial`` or ``damaged``."""

    model: str
    path: str
    local: bool
    state: str
    message: str
    bytes_on_disk: int
    download_bytes: int | None
    thinks: bool | None
    device: str
    plan: str
    recommended_model: str
    recommended_reason: str
    measured_plan: dict | None = None
    """The plan measured on this computer (``tuning.PlanRecord``: cpu, threads, dtype, quantization,
    decode_tok_s, prefill_tok_s, answer_seconds, tuning_seconds, measured_at, candidates, rejected), or None
    before the first load (or when ``DOCMIND_QUANTIZATION`` is set, or on a GPU)."""
    quality: dict | None = None
    """The quality guard's report on the quantized weights in use (``quality.QualityReport``: top1_agreement,
    mean_kl, positions, min_agreement, passed), or None when unquantized or not yet quantized."""
    thinking_budget: dict | None = None
    """How long the model may think before answering: ``tokens`` (what the engine enforces), about how many
    ``seconds`` that is at ``decode_tok_s``, and whether that speed was ``measured`` on this computer (else
    estimated from the model's size)."""

    def to_dict(self) -> dict:
        return asdict(self)


def model_status(settings: Settings, hardware: Hardware | None = None) -> ModelStatus:
    """Describe the chosen model without loading it (no torch import on CPU-only builds)."""
    choice = resolve_model(settings)
    hardware = hardware or detect_hardware()
    on_disk = sum(f.stat().st_size for f in choice.path.rglob("*") if f.is_file()) if choice.path.is_dir() else 0
    try:
        check_model_files(choice)
        state, message = "ready", "The model is on disk and ready."
    except ModelCorruptError as error:
        state, message = "damaged", str(error)
    except ModelError as error:
        state, message = ("partial" if on_disk else "not_downloaded"), str(error)
    record = (read_record(settings, choice, hardware)
              if settings.quantization == "auto" and hardware.device == "cpu" else None)
    plan = record.plan() if record else plan_for(choice.spec, hardware, settings.quantization, on_disk)
    quality = read_quality(quantized_cache_path(settings, choice, plan)) if plan.quantization != "none" else None
    rec = recommend(hardware)
    budget = thinking_budget(settings, record.decode_tok_s if record else None)
    return ModelStatus(
        model=choice.name, path=str(choice.path), local=choice.local, state=state, message=message,
        bytes_on_disk=on_disk, download_bytes=choice.spec.download_bytes if choice.spec else None,
        thinks=choice.spec.thinks if choice.spec else None, device=hardware.summary,
        plan=f"{plan.device} {plan.dtype}, quantization {plan.quantization}: {plan.reason}",
        recommended_model=rec.spec.hub_id, recommended_reason=rec.reason,
        measured_plan=asdict(record) if record else None, quality=quality.to_dict() if quality else None,
        thinking_budget=budget.to_dict())
