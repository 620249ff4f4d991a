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
from docmind.cache.collections import Scope, scope_has_passages, scope_sources
from docmind.cache.documents import list_documents
from docmind.cache.retrieval import Citation, Searcher

log = logging.getLogger(__name__)

SEARCH_K = 5
MIN_RELEVANCE = 0.28
"""Relevance (see ``DocumentSearch._relevance``) below which a passage is not shown as a source; calibrated
with the two penalties on the dev half of tests/retrieval_eval by the rule of ``tune.thresholds``: the most
no-answer questions flagged while at least 96% of the answerable ones are still answered."""
UNKNOWN_TERM_PENALTY = 0.2
"""Relevance lost by every passage when all of the query's keyword terms are missing from the library
(in proportion to the share missing); calibrated with ``MIN_RELEVANCE``."""
UNKNOWN_NAME_PENALTY = 0.2
"""Relevance lost by every passage when the query names something the library never contains (a word
outside the encoder's everyday vocabulary, such as "pyinstaller" or "xlsx"); calibrated with ``MIN_RELEVANCE``."""
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
        scope: Scope | None = None,
        unknown_term_penalty: float = UNKNOWN_TERM_PENALTY,
        unknown_name_penalty: float = UNKNOWN_NAME_PENALTY,
    ) -> None:
        self.searcher = searcher
        self.passages = passages
        self.question = question
        self.k = k
        self.min_relevance = min_relevance
        self.scope = scope or Scope()
        self.unknown_term_penalty = unknown_term_penalty
        self.unknown_name_penalty = unknown_name_penalty

    def has_documents(self) -> bool:
        """True when the chat's scope (all documents, or its collections) holds any passage."""
        return scope_has_passages(self.searcher.db, self.scope)

    def nothing_to_search(self) -> str:
        """What the tool says when the scope holds no passage."""
        if self.scope.everything:
            return NO_DOCUMENTS
        return f"The collections this chat searches ({self.scope.label}) hold no documents yet."

    def search(self, query: str) -> list[Passage]:
        """The relevant passages for ``query`` within the chat's scope, numbered for this turn (best first)."""
        self.passages.searched = True
        found = self.searcher.search(query, self.k, collections=self.scope.search_filter)
        scored = self._relevance(query, found)
        return [
            self.passages.add(c.source, c.page, c.text, score)
            for c, score in zip(found, scored)
            if score >= self.min_relevance
        ]

    async def asearch(self, query: str) -> list[Passage]:
        return await asyncio.to_thread(self.search, query)

    def _relevance(self, query: str, found: list[Citation]) -> list[float]:
        """Each passage's relevance to ``query``: its cosine similarity, less ``unknown_term_penalty``
        times the share of the query's terms that the library never contains, less ``unknown_name_penalty``
        when one of those is a name (see ``Searcher.unknown_terms``).

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
        ids = [c.chunk_id for c in found]
        result = self.searcher.store.query(
            VectorStoreQuery(query_embedding=self.searcher.query_embedding(query), similarity_top_k=len(ids),
                             node_ids=ids)
        )
        cosine = dict(zip(result.ids or [], result.similarities or []))
        unknown = self.searcher.unknown_terms(query)
        penalty = self.unknown_term_penalty * unknown.share + self.unknown_name_penalty * unknown.names
        return [float(cosine.get(c.chunk_id, 0.0)) - penalty for c in found]

    def query_from(self, kwargs: dict[str, Any]) -> str:
        """The search text from whatever arguments the model produced."""
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            query = next((v for v in kwargs.values() if isinstance(v, str) and v.strip()), self.question)
        return query.strip()

    async def tool_call(self, **kwargs: Any) -> str:
        if not await asyncio.to_thread(self.has_documents):
            return self.nothing_to_search()
        passages = await self.asearch(self.query_from(kwargs))
        if not passages:
            return NOTHING_FOUND
        return "Passages (cite them by number, like [1]):\n\n" + format_passages(passages)

    async def list_call(self, **kwargs: Any) -> str:
        documents = await asyncio.to_thread(list_documents, self.searcher.db)
        if not self.scope.everything:
            members = set(await asyncio.to_thread(scope_sources, self.searcher.db, self.scope))
            documents = [d for d in documents if d.source in members]
        if not documents:
            return self.nothing_to_search()
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
