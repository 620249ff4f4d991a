"""The int8 ONNX encoder against torch's, on the real MiniLM; a change of backend re-embeds the library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import load as load_onnx_graph
import pytest

from docmind.cache import Ingestor, Searcher, embeddings
from docmind.cache.embeddings import default_embed_model_path, embed_model_identity, load_embed_model
from docmind.cache.onnx_encoder import exported_int8
from docmind.config import Settings
from docmind.storage import open_database

PASSAGES = [
    "Descale the espresso machine every three months with a citric acid solution.",
    "Cyclists should fit a bright rear lamp when riding after sunset.",
    "Honey never spoils because its low moisture prevents bacteria from growing.",
    "Frozen water pipes can burst because ice expands as it forms. " * 20,  # longer than the 256-token window
]
QUESTIONS = ["How often should the coffee maker lose its limescale?", "What do bike riders need at night?",
             "Can the sweet stuff bees make go off?", "What happens to plumbing in a hard frost?"]


def test_the_int8_encoder_agrees_with_torch_and_is_independent_of_its_batch() -> None:
    path = default_embed_model_path()
    onnx, torch = load_embed_model(path, "onnx-int8"), load_embed_model(path, "torch")

    fast = np.asarray(onnx.get_text_embedding_batch(PASSAGES))
    exact = np.asarray(torch.get_text_embedding_batch(PASSAGES))

    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-4)
    assert (fast * exact).sum(axis=1).min() > 0.98
    asked = np.asarray([onnx.get_query_embedding(q) for q in QUESTIONS])
    assert list((asked @ fast.T).argmax(axis=1)) == list((np.asarray(torch.get_text_embedding_batch(QUESTIONS)) @ exact.T).argmax(axis=1)) == [0, 1, 2, 3]
    assert np.array_equal(np.asarray(onnx.get_text_embedding(PASSAGES[1])), fast[1])  # alone or in a batch
    assert embed_model_identity(path, "onnx-int8") != embed_model_identity(path, "torch")


def test_the_export_is_fused_and_its_recipe_is_part_of_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_embed_model_path()
    identity, torch_identity = embed_model_identity(path, "onnx-int8"), embed_model_identity(path, "torch")
    graph = load_onnx_graph(str(exported_int8(path, identity)), load_external_data=False).graph
    operators = {node.op_type for node in graph.node}
    assert {"QAttention", "SkipLayerNormalization", "BiasGelu"} <= operators  # one kernel each, not dozens of ops
    assert "Softmax" not in operators and "Erf" not in operators

    monkeypatch.setitem(embeddings._BACKEND_RECIPES, "onnx-int8", "a later recipe")
    assert embed_model_identity(path, "onnx-int8") != identity  # so a new recipe re-embeds, as a new backend does
    assert embed_model_identity(path, "torch") == torch_identity


def test_changing_the_backend_reembeds_instead_of_mixing_vectors(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for number, passage in enumerate(PASSAGES):
        (folder / f"note{number}.txt").write_text(passage)
    with_torch = settings.model_copy(update={"embed_backend": "torch"})
    first = Ingestor(with_torch).ingest([folder])

    second = Ingestor(settings).ingest([folder])

    assert first.files_new == 4 and second.files_changed == 4
    assert second.embeddings_computed == first.embeddings_computed and second.embeddings_reused == 0
    assert any("embedding model changed" in notice for notice in second.notices)
    models = {row[0] for row in open_database(settings.db_path).read("SELECT embed_model FROM documents")}
    assert models == {Ingestor(settings).identity}
    assert Searcher(with_torch).search("bike lamp", 2, mode="vector") == []  # stale for torch now
    assert Path(Searcher(settings).search("bike lamp", 1, mode="vector")[0].source).name == "note1.txt"
