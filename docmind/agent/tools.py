"""The agent's tools: ``search_documents`` (numbered, relevant passages) and ``list_documents``.

Both forgive malformed arguments from a small model: a missing or misnamed ``query`` falls back
to any text argument, then to the user's question, instead of failing the turn.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.tools import FunctionTool
from llama_index.core.vector_stores.types import VectorStoreQuery

from docmind.agent.citations import Passage, TurnPassages, format_passages
from docmind.cache.documents import list_documents
from docmind.cache.embeddings import load_embed_model
from docmind.cache.retrieval import Citation, Searcher

log = logging.getLogger(__name__)

SEARCH_K = 5
MIN_RELEVANCE = 0.35
"""Cosine similarity (all-MiniLM-L6-v2) below which a passage is not shown as a source; calibrated on the
dev half of tests/retrieval_eval (no-answer questions against answerable ones, see bench_retrieval.py)."""
NOTHING_FOUND = "No relevant passages were found in the user's documents."
NO_DOCUMENTS = "No documents are loaded in DocMind yet."


class SearchInput(BaseModel):
    query: str = Field(description="what to look for in the user's documents")


class ListInput(BaseModel):
    pass


class DocumentSearch:
    """Searches the library for one turn and numbers what it finds into the turn's passages."""

    def __init__(
        self,
        searcher: Searcher,
        passages: TurnPassages,
        question: str,
        k: int = SEARCH_K,
        min_relevance: float = MIN_RELEVANCE,
    ) -> None:
        self.searcher = searcher
        self.passages = passages
        self.question = question
        self.k = k
        self.min_relevance = min_relevance

    def has_documents(self) -> bool:
        return bool(self.searcher.db.read("SELECT 1 FROM chunks LIMIT 1"))

    def search(self, query: str) -> list[Passage]:
        """The relevant passages for ``query``, numbered for this turn (best first)."""
        self.passages.searched = True
        found = self.searcher.search(query, self.k)
        scored = self._relevance(query, found)
        return [
            self.passages.add(c.source, c.page, c.text, score)
            for c, score in zip(found, scored)
            if score >= self.min_relevance
        ]

    async def asearch(self, query: str) -> list[Passage]:
        return await asyncio.to_thread(self.search, query)

    def _relevance(self, query: str, found: list[Citation]) -> list[float]:
        """Cosine similarity of each passage to ``query`` from the stored embeddings.

        When the library was embedded by another model, only keyword matches were found, and
        they are kept (they contain the query's words).
        """
        if not found:
            return []
        stale = self.searcher.db.read(
            "SELECT COUNT(*) FROM documents WHERE embed_model IS NOT ?", (self.searcher.identity,)
        )[0][0]
        if stale:
            return [1.0] * len(found)
        embed_model = load_embed_model(self.searcher.model_path, self.searcher.settings.embed_backend)
        embedding = embed_model.get_query_embedding(query)
        ids = [c.chunk_id for c in found]
        result = self.searcher.store.query(
            VectorStoreQuery(query_embedding=embedding, similarity_top_k=len(ids), node_ids=ids)
        )
        cosine = dict(zip(result.ids or [], result.similarities or []))
        return [float(cosine.get(c.chunk_id, 0.0)) for c in found]

    def query_from(self, kwargs: dict[str, Any]) -> str:
        """The search text from whatever arguments the model produced."""
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            query = next((v for v in kwargs.values() if isinstance(v, str) and v.strip()), self.question)
        return query.strip()

    async def tool_call(self, **kwargs: Any) -> str:
        if not await asyncio.to_thread(self.has_documents):
            return NO_DOCUMENTS
        passages = await self.asearch(self.query_from(kwargs))
        if not passages:
            return NOTHING_FOUND
        return "Passages (cite them by number, like [1]):\n\n" + format_passages(passages)

    async def list_call(self, **kwargs: Any) -> str:
        documents = await asyncio.to_thread(list_documents, self.searcher.db)
        if not documents:
            return NO_DOCUMENTS
        names = [f"- {Path(d.source).name} ({d.chunks} passages)" for d in documents[:50]]
        more = [f"… and {len(documents) - 50} more"] if len(documents) > 50 else []
        return f"{len(documents)} documents:\n" + "\n".join(names + more)


def make_tools(search: DocumentSearch) -> list[FunctionTool]:
    """The two tools the agent may call during one turn."""
    return [
        FunctionTool.from_defaults(
            async_fn=search.tool_call,
            name="search_documents",
            description="Search the user's documents. Returns numbered passages with file and page; "
            "cite them in the answer by number, like [1].",
            fn_schema=SearchInput,
        ),
        FunctionTool.from_defaults(
            async_fn=search.list_call,
            name="list_documents",
            description="List the documents the user has loaded into DocMind.",
            fn_schema=ListInput,
        ),
    ]
