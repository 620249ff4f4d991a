"""The sentence-embedding model run by ONNX Runtime with int8 weights: about three times as fast on CPU as torch.

The model is exported once per machine from its own weights into the user's cache folder, named by
the model's identity, so another model or recipe is exported anew: ``torch.onnx``, then ONNX Runtime's
transformer optimizer (one fused kernel per attention, LayerNorm, GELU), then dynamic int8
quantization of the matrix multiplications, per output channel, except a few that stay float32
(``_feed_forward_outputs``). Vectors are mean-pooled and normalised as sentence-transformers does,
and keep a cosine above 0.99 with torch's. ``OnnxEmbedding`` is a LlamaIndex embedding, so search
and the agent use it like the torch one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FEED_FORWARD_OUTPUT = re.compile(r"/layer\.(\d+)/output/dense/")  # not ".../attention/output/dense/"


def encoders_dir() -> Path:
    """Where exported encoders are kept: per machine, shared by every data dir (``DOCMIND_CACHE_DIR`` overrides)."""
    configured = os.environ.get("DOCMIND_CACHE_DIR")
    if configured:
        return Path(configured).expanduser() / "encoders"
    import platformdirs

    return Path(platformdirs.user_cache_dir("DocMind", appauthor=False)) / "encoders"


def exported_int8(model_dir: Path, identity: str) -> Path:
    """The int8 ONNX export of the model in ``model_dir``, made on first use (a minute at most) and kept."""
    from filelock import FileLock

    folder = encoders_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{identity.replace(':', '-')}.onnx"
    with FileLock(str(target) + ".lock"):  # two processes export once, not twice
        if not target.is_file():
            _export_int8(model_dir, target)
    return target


def _export_int8(model_dir: Path, target: Path) -> None:
    import torch
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    started = time.perf_counter()
    # eager attention exports as the MatMul/Softmax pattern that ``_fuse`` recognises (sdpa's graph is not)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class _Hidden(torch.nn.Module):  # positional inputs and one output, as the exporter wants
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.int64)
    with tempfile.TemporaryDirectory(dir=target.parent) as work, _quiet():
        plain, fused, quantized = Path(work) / "model.onnx", Path(work) / "fused.onnx", Path(work) / "int8.onnx"
        torch.onnx.export(
            _Hidden(), (sample, sample, torch.zeros_like(sample)), str(plain), input_names=list(_INPUTS),
            output_names=["hidden"], dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*_INPUTS, "hidden"]},
            opset_version=17, dynamo=False,
        )
        _fuse(plain, fused, model.config)
        quantize_dynamic(str(fused), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=_feed_forward_outputs(fused, model.config.num_hidden_layers),
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})  # fused kernels hide their types
        os.replace(quantized, target)
    log.info("exported the int8 encoder %s in %.1f s", target.name, time.perf_counter() - started)


def _fuse(plain: Path, fused: Path, config: Any) -> None:
    """ONNX Runtime's transformer optimizer: each layer's attention, LayerNorm with its residual add, GELU
    with its bias and the remaining bias adds become single kernels. GELU stays exact (no tanh
    approximation), so the float results are those of the unfused graph."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_gelu_approximation = False
    optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                   optimization_options=options, opt_level=0).save_model_to_file(str(fused))


def _feed_forward_outputs(model: Path, layers: int) -> list[str]:
    """The matrix products that leave the feed-forward blocks of the first half of the ``layers``: their GELU
    inputs span a wide range that int8 activations blur, so they stay float32. Measured on MiniLM
    (mean cosine with torch over 96 chunks): all in int8 0.9943, these three in float32 0.9974,
    all six 0.9976 for 21% more CPU time; the later layers barely matter."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = [node.name for node in graph.node if node.op_type == "MatMul"]
    return [name for name in names if (found := _FEED_FORWARD_OUTPUT.search(name)) and int(found.group(1)) < layers // 2]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's tracer warnings and the quantizer's advice, shown once per machine otherwise;
    what the optimizer prints (it prints some failures) goes to stderr, so ``--json`` stdout stays clean."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


class OnnxEmbedding(BaseEmbedding):
    """Mean-pooled, normalised sentence embeddings from an ONNX encoder and the model's own tokenizer."""

    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()

    def __init__(self, model_dir: Path, onnx_path: Path, **kwargs: Any) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        super().__init__(model_name=f"{Path(model_dir).name} (onnx int8)", **kwargs)
        settings = json.loads((Path(model_dir) / "sentence_bert_config.json").read_text())
        self._tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(settings.get("max_seq_length", 256)))
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: on a busy machine (a chat model decoding, other apps)
        # spinning wasted the cores; measured at load 10 on 2 cores: 200-300 ms a chunk instead of 370.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def class_name(cls) -> str:
        return "OnnxEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embed each text on its own: no padding, and a vector that does not depend on the other texts
        (int8 activations are scaled per call, so a batch would change it slightly). On CPU one text of
        a few hundred tokens already keeps the matrix units busy: measured as fast as batches of 8 or 32."""
        vectors = []
        for encoding in self._tokenizer.encode_batch(texts):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                              "token_type_ids": np.zeros_like(ids)})[0][0]
            pooled = hidden.mean(axis=0)
            vectors.append((pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist())
        return vectors

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)
