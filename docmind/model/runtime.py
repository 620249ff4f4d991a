"""The process-wide model: loaded lazily once, served by one engine, exposed to LlamaIndex as ``Settings.llm``."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from docmind.config import Settings
from docmind.model.engine import GenerationEngine
from docmind.model.errors import ModelError
from docmind.model.llm import EngineLLM
from docmind.model.loading import LoadedModel, check_model_files, load_model
from docmind.model.registry import resolve_model

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loaded model, its engine and the LlamaIndex LLM over it."""

    loaded: LoadedModel
    engine: GenerationEngine
    llm: EngineLLM


_lock = threading.Lock()
_runtime: Runtime | None = None


def model_ready(settings: Settings) -> bool:
    """True when the chosen model's files are on disk and complete enough to load."""
    try:
        check_model_files(resolve_model(settings))
    except ModelError:
        return False
    return True


def get_runtime(settings: Settings) -> Runtime:
    """Load the model once per process (raises ``ModelNotDownloadedError`` etc. with what to do)."""
    global _runtime
    with _lock:
        if _runtime is None:
            loaded = load_model(settings)
            window = loaded.choice.spec.context_window if loaded.choice.spec else None
            engine = GenerationEngine(loaded.model, loaded.tokenizer, context_window=window)
            thinks = bool(loaded.choice.spec and loaded.choice.spec.thinks)
            llm = EngineLLM(engine, model_name=loaded.choice.name, enable_thinking=True,
                            temperature=0.6 if thinks else 0.7, top_p=0.95 if thinks else 0.8)
            _set_llamaindex_llm(llm)
            _runtime = Runtime(loaded, engine, llm)
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
    """Stop the engine and drop the model (tests, or switching models)."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.engine.shutdown()
            _runtime = None
            _set_llamaindex_llm(None)
