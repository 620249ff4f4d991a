"""Hybrid retrieval: exact vector top-k plus FTS5 BM25 top-k, fused by weighted reciprocal rank fusion.

Plain RRF lets many look-alike passages that both rankings half-like outvote the one passage that
only BM25 finds (a part number, a place name), and lets BM25 hits sharing one common word blur a
clear vector match. So each ranking is weighted by how decisive it is for this query, and each BM25
hit by the share of the query's terms it contains. A question of several sentences also searches
each sentence, and a file whose second passage matches too gains a little (``Searcher.fuse``).
``Searcher.search`` returns ``Citation``s; ``HybridRetriever`` wraps it as a LlamaIndex retriever for the agent.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from docmind.cache.embeddings import default_embed_model_path, embed_model_identity, load_embed_model
from docmind.config import Settings, load_settings
from docmind.storage import Database, open_database
from docmind.storage.vectors import SQLiteVectorStore, fts_query

log = logging.getLogger(__name__)

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very first ranks
DECISIVE_RANK = 5  # decisiveness compares a ranking's first score with its score at this rank
QUERY_EMBEDDINGS_KEPT = 16  # a few per chat searching at the same moment
SENTENCE_END = re.compile(r"(?<=[?.!;])\s+")
SearchMode = Literal["hybrid", "vector", "keyword"]


@dataclass(frozen=True)
class Citation:
    """A passage that supports an answer: its file, 1-based page (None for files without pages), text, score."""

    source: str
    page: int | None
    text: str
    score: float
    chunk_id: str = ""
    char_start: int | None = None
    char_end: int | None = None

    def to_json(self, rank: int) -> dict[str, Any]:
        """The ``docmind search --json`` form."""
        return {"rank": rank, "score": round(self.score, 6), "source": self.source, "page": self.page, "text": self.text}


def _citation(node: Any, score: float) -> Citation:
    metadata = node.metadata
    return Citation(
        source=str(metadata.get("source", "")),
        page=metadata.get("page"),
        text=node.get_content(),
        score=score,
        chunk_id=node.node_id,
        char_start=metadata.get("char_start"),
        char_end=metadata.get("char_end"),
    )


def reciprocal_rank_fusion(
    rankings: list[list[Citation]], weights: list[list[float]] | None = None, k: int = RRF_K
) -> list[Citation]:
    """Fuse ranked lists: each passage scores the sum of weight/(k + rank) over the lists it appears in.

    ``weights`` gives one weight per passage of each ranking (1.0 when omitted). Passages are
    deduplicated by chunk, and by identical text within one file.
    """
    scores: dict[tuple[str, str], float] = {}
    first: dict[tuple[str, str], Citation] = {}
    for index, ranking in enumerate(rankings):
        seen: set[tuple[str, str]] = set()
        for rank, citation in enumerate(ranking, start=1):
            key = (citation.source, citation.text)
            if key in seen:
                continue
            seen.add(key)
            weight = weights[index][rank - 1] if weights is not None else 1.0
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
            first.setdefault(key, citation)
    ordered = sorted(scores, key=lambda key: scores[key], reverse=True)
    return [_with_score(first[key], scores[key]) for key in ordered]


def query_terms(text: str) -> set[str]:
    """The words of ``text`` that keyword search uses (lower-cased, stop words dropped, as ``fts_query``)."""
    return set(re.findall(r'"([^"]+)"', fts_query(text)))


def decisiveness(scores: list[float], at: int = DECISIVE_RANK) -> float:
    """How clearly a ranking's best hit stands out: the relative drop in score from rank 1 to rank ``at``.

    Ranks past the end of the list count as score 0, so a lone hit is fully decisive.
    """
    if not scores or scores[0] <= 0:
        return 0.0
    later = scores[at - 1] if len(scores) >= at else 0.0
    return max(0.0, (scores[0] - later) / scores[0])


def list_weights(keyword_scores: list[float], vector_scores: list[float]) -> tuple[float, float]:
    """Weights (summing to 2) for the BM25 and vector rankings, in proportion to their decisiveness.

    A question naming a rare part or place gives BM25 one clear winner while the vectors see many
    alike passages; a paraphrase gives the reverse. Equal decisiveness gives plain RRF (1, 1).
    """
    keyword, vector = decisiveness(keyword_scores), decisiveness(vector_scores)
    if keyword + vector == 0:
        return 1.0, 1.0
    return 2 * keyword / (keyword + vector), 2 * vector / (keyword + vector)


def _with_score(citation: Citation, score: float) -> Citation:
    return replace(citation, score=score)


@dataclass(frozen=True)
class Fusion:
    """How the two rankings are combined; the defaults were chosen on the development questions of
    ``tests/retrieval_eval`` (see ``tests/benchmarks/bench_retrieval.py``)."""

    rrf_k: int = 30
    keyword_weight: float = 0.25  # times the BM25 ranking's decisiveness share
    vector_weight: float = 1.0  # times the vector ranking's decisiveness share
    coverage_power: float = 0.5  # a BM25 hit's weight grows with the share of query terms it holds, to this power
    per_document: int = 1  # chunks of one file in the top results before other files' chunks come first
    context_weight: float = 1.0  # BM25 weight of a match in the section context (title › headings); the text's is 1
    part_weight: float = 0.5  # weight of each sentence's own ranking against the whole question's (1)
    file_evidence: float = 0.2  # a passage gains this times its file's second-best fused score (with_file_evidence)
    evidence_similarity: float = 0.5  # ... when that passage's cosine is at least this share of the best one's


@dataclass
class Candidates:
    """What each ranking found for one query, before fusion; ``parts`` holds those of each sentence
    of a question of several (see ``question_parts``)."""

    keyword: list[Citation] | None
    vector: list[Citation] | None
    coverage: list[float]
    parts: list[Candidates] = field(default_factory=list)


def question_parts(query: str) -> list[str]:
    """The sentences of a question of several that each hold at least two keyword terms ([] for one).

    "I have a price and a quantity column. I'd like a total kept in sync. Stored or computed?" asks
    about several things at once; one embedding of it all leans to whichever part dominates.
    """
    parts = [part for part in SENTENCE_END.split(query.strip()) if len(query_terms(part)) >= 2]
    return parts if len(parts) >= 2 else []


def cap_per_document(ranked: list[Citation], cap: int) -> list[Citation]:
    """Move each file's chunks past its first ``cap`` behind the other files' chunks (order kept otherwise),
    so one long file cannot fill the top results; a library of one file keeps its order."""
    if cap <= 0:
        return ranked
    counts: Counter[str] = Counter()
    kept, later = [], []
    for citation in ranked:
        counts[citation.source] += 1
        (kept if counts[citation.source] <= cap else later).append(citation)
    return kept + later


def _fused(found: Candidates, fusion: Fusion) -> list[Citation]:
    """One query's keyword and vector rankings fused (either alone when the other was not run), as deep
    as the longer of them: a passage that both rankings place low stays out of the fusion of parts."""
    keyword, vector = found.keyword, found.vector
    if keyword is None or vector is None:
        return reciprocal_rank_fusion([keyword if keyword is not None else vector or []], k=fusion.rrf_k)
    depth = max(len(keyword), len(vector))
    keyword_weight, vector_weight = list_weights([c.score for c in keyword], [c.score for c in vector])
    keyword_weight *= fusion.keyword_weight
    vector_weight *= fusion.vector_weight
    weights = [[keyword_weight * share**fusion.coverage_power for share in found.coverage],
               [vector_weight] * len(vector)]
    return reciprocal_rank_fusion([keyword, vector], weights, k=fusion.rrf_k)[:depth]


@dataclass(frozen=True)
class UnknownTerms:
    """What a query asks about that its library never mentions."""

    share: float  # the share of its keyword terms that no chunk contains (0 when it has no terms)
    names: bool  # one of those is no whole word of the encoder's vocabulary: a name ("pyinstaller", "xlsx")


@functools.cache
def encoder_vocabulary(model_path: Path) -> frozenset[str] | None:
    """The whole words of the embedding model's WordPiece vocabulary (None when it ships no vocab.txt).

    About 22,000 everyday English words; product names, file formats and rare words are missing.
    """
    try:
        lines = (model_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return frozenset(line for line in lines if line and not line.startswith(("##", "[")))


def with_file_evidence(ranked: list[Citation], cosine: dict[str, float], fusion: Fusion) -> list[Citation]:
    """``ranked`` (best first) re-scored and re-sorted: each passage gains ``fusion.file_evidence`` times
    the score of its file's second-best passage when that passage's cosine (``cosine``, by chunk id) is at
    least ``fusion.evidence_similarity`` times the best cosine found.

    A file where two passages match the question is likelier to answer it than one with a single lucky
    match. The cosine condition keeps a long file's unrelated passages, which fill the pool of a small
    library, from lifting it above a short file that answers. A file's passages keep their order.
    """
    if not fusion.file_evidence or not cosine:
        return ranked
    enough = fusion.evidence_similarity * max(cosine.values())
    seen: Counter[str] = Counter()
    second: dict[str, float] = {}
    for citation in ranked:
        seen[citation.source] += 1
        if seen[citation.source] == 2 and cosine.get(citation.chunk_id, -1.0) >= enough:
            second[citation.source] = citation.score
    rescored = [_with_score(c, c.score + fusion.file_evidence * second.get(c.source, 0.0)) for c in ranked]
    return sorted(rescored, key=lambda citation: citation.score, reverse=True)


class Searcher:
    """Searches the library of one database; the embedding model is loaded on the first vector search."""

    def __init__(self, settings: Settings | None = None, db: Database | None = None, fusion: Fusion | None = None) -> None:
        self.settings = settings or load_settings()
        self.db = db or open_database(self.settings.db_path)
        self.store = SQLiteVectorStore(self.db)
        self.model_path = default_embed_model_path(self.settings.embed_model_path)
        self.identity = embed_model_identity(self.model_path, self.settings.embed_backend)
        self.fusion = fusion or Fusion()
        self.query_embedding = functools.lru_cache(maxsize=QUERY_EMBEDDINGS_KEPT)(self._embed_query)
        """``query``'s embedding, kept for the last few queries: a search and the check of its hits embed it once."""

    def search(
        self, query: str, k: int = 5, mode: SearchMode = "hybrid", collections: Sequence[int] | None = None
    ) -> list[Citation]:
        """The ``k`` best passages for ``query``: fused vector + BM25 (``hybrid``), or one of them alone.

        ``collections`` (collection ids) searches only their documents; both rankings filter before ranking.
        """
        if not query.strip() or k <= 0 or not self.db.read("SELECT 1 FROM chunks LIMIT 1"):
            return []
        found = self.candidates(query, max(4 * k, 20), mode, collections)
        if found is None:
            return []
        return self.fuse(found, k)

    def candidates(
        self, query: str, pool: int, mode: SearchMode = "hybrid", collections: Sequence[int] | None = None,
        fusion: Fusion | None = None,
    ) -> Candidates | None:
        """Each ranking's ``pool`` best passages, for the whole query and for each of its sentences when
        it has several (None: a vector search was asked of a stale library)."""
        fusion = fusion or self.fusion
        found = self._candidates(query, pool, mode, collections, fusion)
        if found is not None:
            parts = (self._candidates(part, pool, mode, collections, fusion) for part in question_parts(query))
            found.parts = [part for part in parts if part is not None]
        return found

    def _candidates(
        self, query: str, pool: int, mode: SearchMode, collections: Sequence[int] | None, fusion: Fusion
    ) -> Candidates | None:
        keyword: list[Citation] | None = None
        vector: list[Citation] | None = None
        coverage: list[float] = []
        if mode in ("hybrid", "keyword"):
            terms = query_terms(query)
            keyword = self._keyword(" ".join(sorted(terms)) or query, pool, fusion.context_weight, collections)
            coverage = self._term_coverage(terms, keyword)
        if mode in ("hybrid", "vector"):
            if self._embeddings_match():
                vector = self._vector(query, pool, collections)
            elif mode == "vector":
                return None
        return Candidates(keyword, vector, coverage)

    def fuse(self, found: Candidates, k: int, fusion: Fusion | None = None) -> list[Citation]:
        """The ``k`` best passages of ``found`` by weighted reciprocal rank fusion, at most
        ``fusion.per_document`` per file ahead of other files.

        A question of several sentences fuses the whole question's ranking with each sentence's
        (weighted ``fusion.part_weight``), so a passage answering one part is not lost to the others.
        """
        fusion = fusion or self.fusion
        ranked = _fused(found, fusion)
        if found.parts:
            rankings = [ranked] + [_fused(part, fusion) for part in found.parts]
            weights = [[1.0] * len(ranked)] + [[fusion.part_weight] * len(part) for part in rankings[1:]]
            ranked = reciprocal_rank_fusion(rankings, weights, k=fusion.rrf_k)
        ranked = with_file_evidence(ranked, {c.chunk_id: c.score for c in found.vector or []}, fusion)
        return cap_per_document(ranked, fusion.per_document)[:k]

    def _keyword(self, query: str, top_k: int, context_weight: float,
                 collections: Sequence[int] | None = None) -> list[Citation]:
        result = self.store.text_search(query, top_k, collections=collections, context_weight=context_weight)
        return [_citation(node, score) for node, score in zip(result.nodes or [], result.similarities or [])]

    def _term_coverage(self, terms: set[str], hits: list[Citation]) -> list[float]:
        """The IDF-weighted share of the query's terms that each hit contains.

        Terms the library lacks count at the mean IDF of the others, so a hit that shares one common
        word with a question full of unknown words scores low. Terms are matched by FTS5 itself, so
        stemming agrees with the BM25 ranking.
        """
        if not hits:
            return []
        chunks = self.db.read("SELECT COUNT(*) FROM chunks")[0][0]
        idf = {term: math.log(1 + (chunks - found + 0.5) / (found + 0.5))
               for term, found in self._chunk_counts(terms).items() if found}
        if not idf:
            return [0.0] * len(hits)
        total = sum(idf.values()) * (1 + (len(terms) - len(idf)) / len(idf))
        ids = [hit.chunk_id for hit in hits]
        rowids = dict(self.db.read(f"SELECT id, node_id FROM chunks WHERE node_id IN ({','.join('?' * len(ids))})",
                                   tuple(ids)))
        marks = ",".join("?" * len(rowids))
        matched: Counter[str] = Counter()
        for term, weight in idf.items():  # on FTS5 rowids: 4x faster than joining chunks per term
            rows = self.db.read(f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})",
                                (fts_query(term), *rowids))
            for row in rows:
                matched[rowids[row[0]]] += weight
        return [matched[chunk_id] / total for chunk_id in ids]

    def unknown_terms(self, query: str) -> UnknownTerms:
        """The query's keyword terms that no chunk of the library contains.

        A question about something the documents never mention ("pandas", "keychain") usually names it.
        """
        counts = self._chunk_counts(query_terms(query))
        missing = [term for term, found in counts.items() if not found]
        vocabulary = encoder_vocabulary(self.model_path)
        return UnknownTerms(
            share=len(missing) / len(counts) if counts else 0.0,
            names=vocabulary is not None and any(term not in vocabulary for term in missing),
        )

    def _chunk_counts(self, terms: set[str]) -> dict[str, int]:
        """How many chunks contain each term (matched by FTS5, so stemmed as in the BM25 ranking)."""
        return {term: self.db.read("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (fts_query(term),))[0][0]
                for term in terms}

    def _embed_query(self, query: str) -> list[float]:
        return load_embed_model(self.model_path, self.settings.embed_backend).get_query_embedding(query)

    def _vector(self, query: str, top_k: int, collections: Sequence[int] | None = None) -> list[Citation]:
        embedding = self.query_embedding(query)
        query_spec = VectorStoreQuery(query_embedding=embedding, similarity_top_k=top_k)
        result = self.store.query(query_spec, collections=collections)
        return [_citation(node, score) for node, score in zip(result.nodes or [], result.similarities or [])]

    def _embeddings_match(self) -> bool:
        """False (and a warning) when documents were embedded by another model: vectors would mislead."""
        rows = self.db.read("SELECT COUNT(*) FROM documents WHERE embed_model IS NOT ?", (self.identity,))
        if rows[0][0]:
            log.warning(
                "%d documents were embedded with another embedding model; searching by keywords only. "
                "Run `docmind ingest` on your folders to re-embed them.", rows[0][0]
            )
            return False
        return True


class HybridRetriever(BaseRetriever):
    """A LlamaIndex retriever over the DocMind library (hybrid vector + BM25 search)."""

    def __init__(self, searcher: Searcher | None = None, top_k: int = 5, **kwargs: Any) -> None:
        self.searcher = searcher or Searcher()
        self.top_k = top_k
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(
                node=TextNode(
                    id_=citation.chunk_id,
                    text=citation.text,
                    metadata={"source": citation.source, "page": citation.page,
                              "char_start": citation.char_start, "char_end": citation.char_end},
                ),
                score=citation.score,
            )
            for citation in self.searcher.search(query_bundle.query_str, self.top_k)
        ]
