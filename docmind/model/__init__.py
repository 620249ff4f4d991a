"""The model layer: registry, hardware plan, download, loading (TorchAO), thinking parser, batched engine.

Importing this package is cheap; torch and transformers load only when a model does. The process-wide
model lives in ``docmind.model.runtime`` (``get_runtime``, ``get_engine``, ``get_llm``, ``model_ready``;
it imports LlamaIndex), its background loading and model switches in ``docmind.model.lifecycle``
(``ModelState``), downloads in ``docmind.model.download``.
"""

from docmind.model.engine import GenerationEngine
from docmind.model.errors import (
    DiskSpaceError,
    DownloadCancelledError,
    DownloadError,
    EngineStalledError,
    EngineStoppedError,
    GenerationFaultError,
    InsufficientMemoryError,
    ModelCorruptError,
    ModelError,
    ModelNotDownloadedError,
    PromptTooLongError,
)
from docmind.model.hardware import (
    Hardware,
    LoadPlan,
    ModelFit,
    Recommendation,
    detect_hardware,
    model_fit,
    plan_for,
    recommend,
)
from docmind.model.registry import (
    MODELS,
    ModelChoice,
    ModelSpec,
    get_spec,
    resolve_model,
)
from docmind.model.requests import GenerationRequest, GenerationResult, RequestHandle
from docmind.model.thinking import Piece, ThinkParser, split_thinking

__all__ = [
    "MODELS",
    "DiskSpaceError",
    "DownloadCancelledError",
    "DownloadError",
    "EngineStalledError",
    "EngineStoppedError",
    "GenerationEngine",
    "GenerationFaultError",
    "GenerationRequest",
    "GenerationResult",
    "Hardware",
    "InsufficientMemoryError",
    "LoadPlan",
    "ModelChoice",
    "ModelCorruptError",
    "ModelError",
    "ModelFit",
    "ModelNotDownloadedError",
    "ModelSpec",
    "Piece",
    "PromptTooLongError",
    "Recommendation",
    "RequestHandle",
    "ThinkParser",
    "detect_hardware",
    "model_fit",
    "get_spec",
    "plan_for",
    "recommend",
    "resolve_model",
    "split_thinking",
]
