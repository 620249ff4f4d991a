"""The search tool on a real library: each search embeds its query once, and scores hits by their true cosine."""

from __future__ import annotations

import pytest
from llama_index.core.vector_stores.types import VectorStoreQuery

from docmind.agent.citations import TurnPassages
from docmind.agent.tools import DocumentSearch
from docmind.cache.embeddings import load_embed_model
from docmind.cache.retrieval import Searcher

QUERY = "How much did revenue grow in the third quarter?"


def test_a_search_embeds_its_query_once(settings_with_library, monkeypatch: pytest.MonkeyPatch) -> None:
    searcher = Searcher(settings_with_library)
    model = load_embed_model(searcher.model_path)
    reference = model.get_query_embedding(QUERY)  # before counting: what the relevance check must use
    embedded: list[str] = []
    real = type(model)._get_query_embedding

    def counting(self, query: str) -> list[float]:
        embedded.append(query)
        return real(self, query)

    monkeypatch.setattr(type(model), "_get_query_embedding", counting)
    search = DocumentSearch(searcher, TurnPassages(), QUERY, min_relevance=float("-inf"),
                            unknown_term_penalty=0.0)  # scores are then the plain cosine
    passages = search.search(QUERY)

    assert embedded == [QUERY], "the vector search and the relevance check share one embedding"
    assert passages and passages[0].source.endswith("report.md")
    ids = [c.chunk_id for c in searcher.search(QUERY)]
    truth = searcher.store.query(VectorStoreQuery(query_embedding=reference, similarity_top_k=len(ids), node_ids=ids))
    cosine = dict(zip(truth.ids, truth.similarities))
    assert [p.score for p in passages] == pytest.approx([cosine[i] for i in ids])
    DocumentSearch(searcher, TurnPassages(), QUERY).search("tomatoes and basil")
    assert embedded == [QUERY, "tomatoes and basil"]
