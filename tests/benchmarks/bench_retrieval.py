"""Retrieval benchmark on public corpora with questions written as users ask them: DocMind against stock LlamaIndex.

Run: ``.venv/bin/python tests/benchmarks/bench_retrieval.py [--split held_out|dev] [--work DIR]``.
Prints one JSON document: for the chosen half of ``tests/retrieval_eval/questions.jsonl``, recall@1/@5/@10
and MRR@10 per corpus and per question type for DocMind (hybrid search) and for stock LlamaIndex
(``VectorStoreIndex`` over the same MiniLM, ``SentenceSplitter(512)``, no keyword search), the agent's
"not in your documents" precision and recall, and search latency, including on a 10,000-chunk library.

Both systems get the same extracted text (DocMind's readers), so the comparison is about chunking and
ranking. A hit is a passage from the answer's file (and page, for the PDF). The corpora are fetched
by ``tests/retrieval_eval/fetch_corpora.py``; libraries and stock embeddings are kept in ``--work``
(default ``~/.cache/docmind-retrieval-eval/work``) so that a re-run embeds only new chunk text.
Tune on ``--split dev`` only; ``held_out`` is for reporting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.retrieval_eval.fetch_corpora import CORPORA, default_dest, fetch_all  # noqa: E402

QUESTIONS = ROOT / "tests" / "retrieval_eval" / "questions.jsonl"
TOP = 10
LATENCY_CHUNKS = 10_000


@dataclass(frozen=True)
class Question:
    id: str
    corpus: str
    file: str | None
    page: int | None
    type: str
    split: str
    question: str

    @property
    def answerable(self) -> bool:
        return self.type != "no_answer"


@dataclass(frozen=True)
class Hit:
    """One ranked passage: its file name and page."""

    file: str
    page: int | None


def load_questions(split: str | None = None, path: Path = QUESTIONS) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if split is None or row["split"] == split:
            questions.append(Question(row["id"], row["corpus"], row["file"], row["page"], row["type"],
                                      row["split"], row["question"]))
    return questions


def rank_of(question: Question, hits: list[Hit]) -> int | None:
    """The 1-based rank of the first passage from the answer's file (and page), or None."""
    for rank, hit in enumerate(hits[:TOP], start=1):
        if hit.file == question.file and (question.page is None or hit.page == question.page):
            return rank
    return None


def scores(ranks: list[int | None]) -> dict[str, float]:
    """recall@1/@5/@10 and MRR@10 of a list of ranks (None: not in the top 10)."""
    count = max(len(ranks), 1)
    return {
        "questions": len(ranks),
        "recall@1": round(sum(1 for r in ranks if r is not None and r <= 1) / count, 3),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / count, 3),
        "recall@10": round(sum(1 for r in ranks if r is not None) / count, 3),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None) / count, 3),
    }


def breakdown(questions: list[Question], ranks: dict[str, int | None]) -> dict[str, dict]:
    """Scores overall, per corpus and per question type (answerable questions only)."""
    answerable = [q for q in questions if q.answerable]
    groups: dict[str, list[int | None]] = defaultdict(list)
    for q in answerable:
        groups["overall"].append(ranks[q.id])
        groups[f"corpus:{q.corpus}"].append(ranks[q.id])
        groups[f"type:{q.type}"].append(ranks[q.id])
    return {name: scores(values) for name, values in sorted(groups.items())}


# --- DocMind ----------------------------------------------------------------------------------------

class DocMindLibrary:
    """One corpus ingested by DocMind into its own data dir (re-chunked by the current code on open)."""

    def __init__(self, corpus_dir: Path, data_dir: Path, rechunk: bool = True) -> None:
        from docmind.cache.documents import list_documents, remove_document
        from docmind.cache.ingest import Ingestor
        from docmind.cache.retrieval import Searcher
        from docmind.config import load_settings

        settings = load_settings(data_dir=data_dir)
        ingestor = Ingestor(settings)
        if rechunk:  # keep the embedding cache, re-chunk every file with the current code
            for document in list_documents(ingestor.db):
                remove_document(ingestor.db, document.source)
        started = time.perf_counter()
        report = ingestor.ingest([corpus_dir])
        self.ingest = {"seconds": round(time.perf_counter() - started, 1), "chunks": report.chunks_added,
                       "embeddings_computed": report.embeddings_computed}
        if report.files_failed:
            raise SystemExit(f"ingest of {corpus_dir} failed: {report.files_failed}")
        self.searcher = Searcher(settings, ingestor.db)

    def search(self, query: str, k: int = TOP) -> list[Hit]:
        return [Hit(Path(c.source).name, c.page) for c in self.searcher.search(query, k)]

    def relevance(self, query: str) -> float:
        """The best relevance score among the passages the agent's search tool would consider."""
        from docmind.agent.citations import TurnPassages
        from docmind.agent.tools import DocumentSearch

        passages = DocumentSearch(self.searcher, TurnPassages(), query, min_relevance=float("-inf")).search(query)
        return max((p.score for p in passages), default=float("-inf"))


# --- Stock LlamaIndex ---------------------------------------------------------------------------------

class StockLibrary:
    """``VectorStoreIndex`` over ``SentenceSplitter(512)`` chunks, embedded by the same MiniLM (cached on disk)."""

    def __init__(self, corpus_dir: Path, cache_file: Path) -> None:
        import numpy as np
        from llama_index.core import Document, VectorStoreIndex
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.schema import MetadataMode

        from docmind.cache.embeddings import default_embed_model_path, load_embed_model
        from docmind.cache.readers import read_file

        model = load_embed_model(default_embed_model_path(), "torch")  # stock: HuggingFaceEmbedding
        documents = []
        for path in sorted(p for p in corpus_dir.iterdir() if not p.name.startswith(".")):
            for section in read_file(path.read_bytes(), path):
                documents.append(Document(text=section.text, metadata={"file": path.name, "page": section.page},
                                          excluded_embed_metadata_keys=["file", "page"]))
        nodes = SentenceSplitter(chunk_size=512).get_nodes_from_documents(documents)
        cached = dict(np.load(cache_file)) if cache_file.is_file() else {}
        keys = [hashlib.sha256(node.get_content(metadata_mode=MetadataMode.EMBED).encode()).hexdigest() for node in nodes]
        missing = sorted({key for key in keys if key not in cached})
        texts = {key: node.get_content(metadata_mode=MetadataMode.EMBED) for key, node in zip(keys, nodes)}
        started = time.perf_counter()
        if missing:
            vectors = model.get_text_embedding_batch([texts[key] for key in missing])
            cached.update({key: np.asarray(vector, dtype=np.float32) for key, vector in zip(missing, vectors)})
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache_file, **cached)
        for key, node in zip(keys, nodes):
            node.embedding = cached[key].tolist()
        self.ingest = {"seconds": round(time.perf_counter() - started, 1), "chunks": len(nodes),
                       "embeddings_computed": len(missing)}
        self.retriever = VectorStoreIndex(nodes, embed_model=model).as_retriever(similarity_top_k=TOP)

    def search(self, query: str, k: int = TOP) -> list[Hit]:
        return [Hit(r.node.metadata["file"], r.node.metadata["page"]) for r in self.retriever.retrieve(query)[:k]]


# --- Measures -----------------------------------------------------------------------------------------

WARM_UP_QUERY = "How do I open a file?"  # not a question of the set, so no timed query finds its embedding cached


def percentiles(times: list[float]) -> dict[str, float]:
    """Median and p95 of ``times`` (milliseconds)."""
    times = sorted(times)
    return {"median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1), "queries": len(times)}


def timed(fn: Callable[[str], object], queries: Iterable[str]) -> dict[str, float]:
    """Median and p95 milliseconds of ``fn`` over ``queries`` (after one warm-up call on another query)."""
    fn(WARM_UP_QUERY)
    times = []
    for query in queries:
        started = time.perf_counter()
        fn(query)
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def search_latency(searcher: object, queries: Iterable[str], k: int = 5) -> dict[str, object]:
    """What one ``Searcher.search`` costs at the agent's ``k``, the query embedded afresh each time (the
    embedding cache is cleared, untimed, before each call), and apart from it the query embedding alone."""
    searcher.search(WARM_UP_QUERY, k)
    searches, embeddings = [], []
    for query in queries:
        searcher.query_embedding.cache_clear()
        started = time.perf_counter()
        searcher.query_embedding(query)
        embeddings.append((time.perf_counter() - started) * 1000)
        searcher.query_embedding.cache_clear()
        started = time.perf_counter()
        searcher.search(query, k)
        searches.append((time.perf_counter() - started) * 1000)
    return {"search": percentiles(searches), "query_embedding": percentiles(embeddings)}


def no_answer_figures(questions: list[Question], best: dict[str, float], threshold: float) -> dict[str, float]:
    """How the agent's threshold separates questions: it says 'not in your documents' when no passage passes."""
    flagged = {q.id for q in questions if best[q.id] < threshold}
    no_answer = [q for q in questions if not q.answerable]
    answerable = [q for q in questions if q.answerable]
    true = sum(1 for q in no_answer if q.id in flagged)
    return {
        "threshold": threshold,
        "no_answer_questions": len(no_answer),
        "no_answer_recall": round(true / max(len(no_answer), 1), 3),
        "no_answer_precision": round(true / max(len(flagged), 1), 3),
        "answerable_answered": round(sum(1 for q in answerable if q.id not in flagged) / max(len(answerable), 1), 3),
    }


def padded_library(libraries: dict[str, DocMindLibrary], data_dir: Path, chunks: int) -> object:
    """A library of at least ``chunks`` chunks: copies of the corpora's real chunks under other names (for latency)."""
    import sqlite3

    from docmind.cache.retrieval import Searcher
    from docmind.config import load_settings

    searcher = Searcher(load_settings(data_dir=data_dir))
    conn = sqlite3.connect(searcher.settings.db_path, isolation_level=None)
    try:
        conn.execute("DELETE FROM chunks")
        conn.execute("DELETE FROM documents")
        copy = 0
        while conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] < chunks:
            for library in libraries.values():
                conn.execute("ATTACH DATABASE ? AS src", (str(library.searcher.settings.db_path),))
                for table, renamed in (("chunks", ("node_id", "source")), ("documents", ("source",))):
                    columns = [row[1] for row in conn.execute(f"PRAGMA src.table_info({table})") if row[1] != "id"]
                    picked = [f"'copy{copy}/' || {name}" if name in renamed else name for name in columns]
                    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(picked)} FROM src.{table}")
                conn.execute("DETACH DATABASE src")
                copy += 1
    finally:
        conn.close()
    return searcher


def run(split: str, work: Path, stock: bool = True, rechunk: bool = True, latency_queries: int = 40) -> dict:
    logging.basicConfig(level=logging.WARNING)
    corpora = fetch_all(default_dest())
    questions = load_questions(split)
    from docmind.agent.tools import MIN_RELEVANCE

    result: dict = {"split": split, "questions": len(questions), "ingest": {}, "latency": {}}
    docmind_ranks: dict[str, int | None] = {}
    stock_ranks: dict[str, int | None] = {}
    best: dict[str, float] = {}
    libraries: dict[str, DocMindLibrary] = {}
    for corpus in CORPORA:
        asked = [q for q in questions if q.corpus == corpus]
        library = libraries[corpus] = DocMindLibrary(corpora / corpus, work / "docmind" / corpus, rechunk)
        result["ingest"][f"docmind:{corpus}"] = library.ingest
        for q in asked:
            docmind_ranks[q.id] = rank_of(q, library.search(q.question))
            best[q.id] = library.relevance(q.question)
        result["latency"][f"docmind:{corpus}"] = search_latency(library.searcher, [q.question for q in asked][:latency_queries])
        if stock:
            baseline = StockLibrary(corpora / corpus, work / "stock" / f"{corpus}.npz")
            result["ingest"][f"stock:{corpus}"] = baseline.ingest
            for q in asked:
                stock_ranks[q.id] = rank_of(q, baseline.search(q.question))
            result["latency"][f"stock:{corpus}"] = timed(baseline.search, [q.question for q in asked][:latency_queries])
    big = padded_library(libraries, work / "docmind" / "padded", LATENCY_CHUNKS)
    result["latency"]["docmind:padded"] = {
        "chunks": big.db.read("SELECT COUNT(*) FROM chunks")[0][0],
        **search_latency(big, [q.question for q in questions][:latency_queries]),
    }
    result["docmind"] = breakdown(questions, docmind_ranks)
    if stock:
        result["stock"] = breakdown(questions, stock_ranks)
    result["no_answer"] = no_answer_figures(questions, best, MIN_RELEVANCE)
    result["best_relevance"] = {q.id: round(best[q.id], 4) for q in questions}
    result["ranks"] = {q.id: docmind_ranks[q.id] for q in questions if q.answerable}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["held_out", "dev"], default="held_out")
    parser.add_argument("--work", type=Path, default=default_dest() / "work")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock LlamaIndex side")
    parser.add_argument("--keep-libraries", action="store_true",
                        help="only ingest what changed (default: re-chunk every file with the current code)")
    parser.add_argument("--latency-queries", type=int, default=40, help="queries timed on the 10,000-chunk library")
    args = parser.parse_args()
    result = run(args.split, args.work, stock=not args.no_stock, rechunk=not args.keep_libraries,
                 latency_queries=args.latency_queries)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
