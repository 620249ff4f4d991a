"""Collections and export/import benchmark; prints one JSON document on stdout (progress on stderr).

    .venv/bin/python tests/benchmarks/bench_library.py [--documents 2000] [--chunks-per-document 10] [--dim 384]

- scope: median latency of a vector top-10 and a BM25 top-10 over the whole library, and scoped to a
  collection holding 10% of the documents (the scope is filtered in SQL before ranking).
- transfer: seconds and bytes of ``export_everything`` and of ``import_everything`` into an empty data dir.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from docmind.cache.collections import add_sources, create_collection
from docmind.cache.transfer import export_everything, import_everything
from docmind.storage import Database, SQLiteVectorStore

WORDS = np.array([f"term{i}" for i in range(3000)])


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median_ms(fn, runs: int = 30) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def build(folder: Path, documents: int, per_document: int, dim: int) -> tuple[Database, int]:
    """A library of synthetic documents with random embeddings; returns the database and a 10% collection id."""
    from llama_index.core.schema import TextNode

    rng = np.random.default_rng(0)
    db = Database(folder / "docmind.db")
    store = SQLiteVectorStore(db)
    sources = [f"/library/doc{n:05}.txt" for n in range(documents)]
    db.write(lambda conn: conn.executemany(
        "INSERT INTO documents (source, sha256, size, mtime, chunks, ingested_at) VALUES (?, ?, 1, 0, ?, 'now')",
        [(source, f"{n:064x}", per_document) for n, source in enumerate(sources)]))
    for start in range(0, documents, 200):
        nodes = []
        for source in sources[start:start + 200]:
            for c in range(per_document):
                text = " ".join(rng.choice(WORDS, 60))
                nodes.append(TextNode(id_=f"{source}#{c}", text=text, metadata={"source": source},
                                      embedding=rng.standard_normal(dim).astype(np.float32).tolist()))
        store.add(nodes)
    collection = create_collection(db, "tenth")
    add_sources(db, collection.id, sources[::10])
    return db, collection.id


def bench_scope(db: Database, collection_id: int, dim: int) -> dict:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store = SQLiteVectorStore(db)
    query = VectorStoreQuery(query_embedding=np.random.default_rng(1).standard_normal(dim).tolist(),
                             similarity_top_k=10)
    words = "term1 term20 term300"
    return {
        "vector_all_ms": _median_ms(lambda: store.query(query)),
        "vector_scoped_ms": _median_ms(lambda: store.query(query, collections=[collection_id])),
        "keyword_all_ms": _median_ms(lambda: store.text_search(words, 10)),
        "keyword_scoped_ms": _median_ms(lambda: store.text_search(words, 10, collections=[collection_id])),
    }


def bench_transfer(db: Database, folder: Path) -> dict:
    started = time.perf_counter()
    report = export_everything(db, folder, folder / "export.zip")
    exported = time.perf_counter() - started
    target = folder / "target"
    started = time.perf_counter()
    imported = import_everything(Database(target / "docmind.db"), target, folder / "export.zip")
    return {"export_seconds": round(exported, 2), "export_bytes": report.bytes,
            "import_seconds": round(time.perf_counter() - started, 2), "documents_added": imported.documents_added}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--chunks-per-document", type=int, default=10)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _progress(f"building {args.documents} x {args.chunks_per_document} chunks")
        db, collection_id = build(folder, args.documents, args.chunks_per_document, args.dim)
        _progress("timing scoped search")
        scope = bench_scope(db, collection_id, args.dim)
        _progress("timing export and import")
        transfer = bench_transfer(db, folder)
    print(json.dumps({"chunks": args.documents * args.chunks_per_document, "scope": scope, "transfer": transfer},
                     indent=2))


if __name__ == "__main__":
    main()
