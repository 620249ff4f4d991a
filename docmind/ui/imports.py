"""The app's background threads import torch, transformers and LlamaIndex one at a time.

The model load, the first ingest, the first chat and the warm-ups each need these libraries. Two
threads importing them at once can get a half-initialised module ("partially initialized module"
errors, seen at start-up), so each of those threads calls ``import_heavy_libraries`` first: the first
caller imports them, the others wait until it is done.
"""

from __future__ import annotations

import importlib
import threading

HEAVY_MODULES = ("torch", "transformers", "llama_index.core", "llama_index.embeddings.huggingface",
                 "llama_index.llms.huggingface")

_lock = threading.Lock()
_imported = False


def import_heavy_libraries() -> None:
    """Import ``HEAVY_MODULES`` unless already done; safe to call from any number of threads."""
    global _imported
    with _lock:
        if not _imported:
            for name in HEAVY_MODULES:
                importlib.import_module(name)
            _imported = True
