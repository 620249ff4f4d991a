"""The models DocMind knows, and how settings pick one (hub id or a local directory)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from docmind.config import Settings

GB = 1024**3


@dataclass(frozen=True)
class ModelSpec:
    """A model the user can choose, with what it costs to download and to run."""

    hub_id: str
    label: str
    params_b: float
    download_bytes: int
    ram_bytes: int
    """Memory to run it in bf16 on CPU (weights plus working room)."""
    vram_bytes: int
    """GPU memory to run it in bf16."""
    thinks: bool
    """True when the model always thinks (Qwen3-Thinking-2507); False for hybrid models that can skip it."""
    context_window: int = 32768

    @property
    def name(self) -> str:
        """The model's plain name, without the label's note in brackets: "Qwen3 1.7B"."""
        return self.label.split(" (")[0]

    @property
    def int8_ram_bytes(self) -> int:
        """Approximate memory with int8 weights (weights shrink to about half)."""
        return int(self.ram_bytes * 0.55)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("Qwen/Qwen3-4B-Thinking-2507", "Qwen3 4B Thinking (best answers)", 4.0,
              8_045_000_000, 11 * GB, 10 * GB, thinks=True, context_window=32768),
    ModelSpec("Qwen/Qwen3-1.7B", "Qwen3 1.7B (faster, for 8 GB machines)", 1.7,
              4_065_000_000, 6 * GB, 5 * GB, thinks=False, context_window=32768),
    ModelSpec("Qwen/Qwen3-0.6B", "Qwen3 0.6B (fastest, weakest)", 0.6,
              1_504_000_000, 3 * GB, 2 * GB, thinks=False, context_window=32768),
)
DEFAULT_MODEL_ID = MODELS[0].hub_id


def get_spec(hub_id: str) -> ModelSpec | None:
    """The registry entry for ``hub_id``, or None for a model DocMind does not list."""
    return next((spec for spec in MODELS if spec.hub_id == hub_id), None)


@dataclass(frozen=True)
class ModelChoice:
    """What settings chose: a hub model downloaded into the data dir, or a local directory."""

    name: str
    """Hub id, or the local directory's path."""
    path: Path
    """Where the weights are (or will be, once downloaded)."""
    spec: ModelSpec | None
    local: bool
    """True when DOCMIND_MODEL_PATH points at a directory the user manages (never downloaded)."""


def models_dir(settings: Settings) -> Path:
    return settings.data_dir / "models"


def local_dir_for(settings: Settings, hub_id: str) -> Path:
    """Where ``hub_id`` is downloaded: ``<data dir>/models/<org>--<name>``."""
    return models_dir(settings) / re.sub(r"[^A-Za-z0-9._-]", "--", hub_id.replace("/", "--"))


def resolve_model(settings: Settings) -> ModelChoice:
    """The model settings ask for: ``DOCMIND_MODEL_PATH`` wins over ``DOCMIND_MODEL``."""
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        return ModelChoice(name=str(path), path=path, spec=None, local=True)
    return ModelChoice(name=settings.model, path=local_dir_for(settings, settings.model),
                       spec=get_spec(settings.model), local=False)
