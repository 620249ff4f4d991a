"""The process-wide model: loaded lazily once, served by one engine, exposed to LlamaIndex as ``Settings.llm``.

The runtime is keyed by the resolved model directory and the requested quantization: asking for another
model (or plan) shuts the old engine down and loads the new one. Loads, switches and unloads are
serialised by one lock.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from docmind.config import Settings
from docmind.model.engine import GenerationEngine
from docmind.model.errors import EngineStoppedError, ModelError, ModelSwitchedError
from docmind.model.llm import EngineLLM
from docmind.model.loading import LoadedModel, check_model_files, load_model
from docmind.model.registry import resolve_model

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loaded model, its engine and the LlamaIndex LLM over it."""

    key: tuple[str, str]
    """``runtime_key`` of the settings it was loaded for."""
    loaded: LoadedModel
    engine: GenerationEngine
    llm: EngineLLM


SWITCH_DRAIN_SECONDS = 30.0
"""On a switch or unload, answers already being written get this long to finish on the old model."""

_lock = threading.Lock()
_runtime: Runtime | None = None


def model_ready(settings: Settings) -> bool:
    """True when the chosen model's files are on disk and complete enough to load."""
    try:
        check_model_files(resolve_model(settings))
    except ModelError:
        return False
    return True


def runtime_key(settings: Settings) -> tuple[str, str]:
    """What identifies a loaded runtime: the resolved model directory and the requested quantization.

    (The plan's other inputs, such as the RAM free right now, must not make a loaded model reload.)
    """
    return str(resolve_model(settings).path.resolve()), settings.quantization


def get_runtime(settings: Settings) -> Runtime:
    """The runtime of the model ``settings`` choose: loaded on first use, and loaded again (after
    unloading the old one) when the settings choose another model or quantization. Raises
    ``ModelNotDownloadedError`` etc. with what to do."""
    global _runtime
    key = runtime_key(settings)
    with _lock:
        if _runtime is not None and _runtime.key != key:
            log.info("switching the model from %s to %s", _runtime.key, key)
            _unload_locked(ModelSwitchedError())
        if _runtime is None:
            loaded = load_model(settings)
            window = loaded.choice.spec.context_window if loaded.choice.spec else None
            engine = GenerationEngine(loaded.model, loaded.tokenizer, context_window=window)
            thinks = bool(loaded.choice.spec and loaded.choice.spec.thinks)
            llm = EngineLLM(engine, model_name=loaded.choice.name, enable_thinking=True,
                            temperature=0.6 if thinks else 0.7, top_p=0.95 if thinks else 0.8)
            _set_llamaindex_llm(llm)
            _runtime = Runtime(key, loaded, engine, llm)
        return _runtime


def get_engine(settings: Settings) -> GenerationEngine:
    """The one generation engine of this process."""
    return get_runtime(settings).engine


def get_llm(settings: Settings) -> EngineLLM:
    """The LlamaIndex LLM over the shared engine (also installed as ``Settings.llm``)."""
    return get_runtime(settings).llm


def _set_llamaindex_llm(llm: EngineLLM | None) -> None:
    from llama_index.core import Settings as LlamaSettings

    LlamaSettings.llm = llm


def unload() -> None:
    """Stop the engine and drop the model."""
    with _lock:
        _unload_locked()


def _unload_locked(reason: EngineStoppedError | None = None) -> None:
    global _runtime
    if _runtime is not None:
        _runtime.engine.shutdown(drain_seconds=SWITCH_DRAIN_SECONDS, reason=reason)
        _runtime = None
        _set_llamaindex_llm(None)
