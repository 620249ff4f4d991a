"""What the user needs to know about the model: chosen, on disk or not, and what this machine suits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from docmind.config import Settings
from docmind.model.errors import ModelCorruptError, ModelError
from docmind.model.hardware import Hardware, detect_hardware, plan_for, recommend
from docmind.model.loading import check_model_files
from docmind.model.registry import resolve_model


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
    plan = plan_for(choice.spec, hardware, settings.quantization, on_disk)
    rec = recommend(hardware)
    return ModelStatus(
        model=choice.name, path=str(choice.path), local=choice.local, state=state, message=message,
        bytes_on_disk=on_disk, download_bytes=choice.spec.download_bytes if choice.spec else None,
        thinks=choice.spec.thinks if choice.spec else None, device=hardware.summary,
        plan=f"{plan.device} {plan.dtype}, quantization {plan.quantization}: {plan.reason}",
        recommended_model=rec.spec.hub_id, recommended_reason=rec.reason)
