"""Storage benchmark; prints one JSON document on stdout (progress on stderr).

    .venv/bin/python tests/benchmarks/bench_storage.py [--vectors 100000] [--dim 384] [--kv-nodes 10000] [--tx 2000]

- vectors: exact top-10 over N x dim float32 embeddings in SQLiteVectorStore (goal: median <= 50 ms at 100k x 384),
  plus the cold matrix load, a query right after another batch is appended, a filtered query and BM25.
- kv: put_all of N docstore-shaped nodes and get_all from a fresh store, against stock SimpleKVStore + persist().
- writers: write transactions per second with 1 and with 4 writer processes on one database file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from docmind.storage import Database, SQLiteKVStore, SQLiteVectorStore

# Text with a Zipf word distribution over 5,000 words (a few real stopwords most frequent), like real prose.
VOCABULARY = np.array(["the", "of", "and", "to", "in", "is"] + [f"term{i}" for i in range(4994)])
ZIPF = 1 / np.arange(1, len(VOCABULARY) + 1)
ZIPF /= ZIPF.sum()


def _texts(rng: np.random.Generator, count: int, words: int) -> list[str]:
    return [" ".join(row) for row in VOCABULARY[rng.choice(len(VOCABULARY), size=(count, words), p=ZIPF)]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bench_vectors(folder: Path, count: int, dim: int, queries: int = 50) -> dict:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
    )

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((count, dim)).astype(np.float32)
    store = SQLiteVectorStore(folder / "vectors.db")

    texts = _texts(rng, count + 100, 60)

    def node(i: int, vector: np.ndarray) -> TextNode:
        metadata = {"source": f"/docs/{i % 100}.pdf", "page": i % 30 + 1}
        n = TextNode(id_=f"n{i}", text=texts[i], embedding=vector.tolist(), metadata=metadata)
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 100}")
        return n

    started = time.perf_counter()
    for start in range(0, count, 2000):
        store.add([node(i, matrix[i]) for i in range(start, min(start + 2000, count))])
        _progress(f"vectors: added {min(start + 2000, count)}/{count}")
    add_seconds = time.perf_counter() - started

    probes = rng.standard_normal((queries, dim)).astype(np.float32)

    def query(vector: np.ndarray, **kwargs) -> tuple[float, list[str]]:
        t = time.perf_counter()
        result = store.query(VectorStoreQuery(query_embedding=vector.tolist(), similarity_top_k=10, **kwargs))
        return time.perf_counter() - t, result.ids

    cold, _ = query(probes[0])
    timings, exact = [], True
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    for i, vector in enumerate(probes):
        seconds, ids = query(vector)
        timings.append(seconds)
        if i < 5:
            expected = [f"n{j}" for j in np.argsort(-(unit @ (vector / np.linalg.norm(vector))))[:10]]
            exact &= ids == expected
    ten_percent = MetadataFilters(filters=[MetadataFilter(key="doc_id", value=[f"doc{j}" for j in range(10)], operator=FilterOperator.IN)])
    filtered = [query(vector, filters=ten_percent)[0] for vector in probes[:20]]
    not_first_pages = MetadataFilters(filters=[MetadataFilter(key="page", value=[1, 2, 3], operator=FilterOperator.NIN)])
    metadata_filtered = [query(vector, filters=not_first_pages)[0] for vector in probes[:10]]
    mmr = [query(vector, mode=VectorStoreQueryMode.MMR)[0] for vector in probes[:10]]
    bm25 = []
    for words in _texts(rng, 20, 4):
        t = time.perf_counter()
        store.text_search("what is " + words, top_k=10)
        bm25.append(time.perf_counter() - t)
    store.add([node(count + i, rng.standard_normal(dim).astype(np.float32)) for i in range(100)])
    after_append, _ = query(probes[1])
    store.delete_nodes(node_ids=[f"n{count + i}" for i in range(100)])
    after_delete, _ = query(probes[1])
    return {
        "vectors": count,
        "dim": dim,
        "add_per_second": round(count / add_seconds),
        "first_query_ms_with_matrix_load": _ms(cold),
        "query_top10_median_ms": _ms(statistics.median(timings)),
        "query_top10_p95_ms": _ms(sorted(timings)[int(0.95 * len(timings)) - 1]),
        "query_top10_goal_ms": 50,
        "exact_vs_numpy": exact,
        "filtered_10pct_median_ms": _ms(statistics.median(filtered)),
        "filtered_metadata_nin_90pct_median_ms": _ms(statistics.median(metadata_filtered)),
        "mmr_top10_median_ms": _ms(statistics.median(mmr)),
        "query_after_100_appended_ms": _ms(after_append),
        "query_after_100_deleted_ms_full_reload": _ms(after_delete),
        "bm25_top10_median_ms": _ms(statistics.median(bm25)),
        "database_mb": round((folder / "vectors.db").stat().st_size / 1e6, 1),
    }


def bench_kv(folder: Path, count: int) -> dict:
    from llama_index.core.schema import TextNode
    from llama_index.core.storage.docstore.utils import doc_to_json
    from llama_index.core.storage.kvstore import SimpleKVStore

    rng = np.random.default_rng(1)
    pairs = []
    for i, text in enumerate(_texts(rng, count, 150)):
        node = TextNode(text=text, metadata={"source": f"/docs/{i % 50}.pdf", "page": i % 9 + 1})
        pairs.append((node.node_id, doc_to_json(node)))
    db_path, json_path = folder / "kv.db", folder / "kv" / "docstore.json"

    writer, reader = SQLiteKVStore(Database(db_path)), SQLiteKVStore(Database(db_path))  # created and migrated here
    reader.get("warm-up")
    t = time.perf_counter()
    writer.put_all(pairs, collection="docstore/data")
    sqlite_put = time.perf_counter() - t
    t = time.perf_counter()
    loaded = reader.get_all("docstore/data")
    sqlite_get = time.perf_counter() - t
    assert len(loaded) == count

    t = time.perf_counter()
    simple = SimpleKVStore()
    simple.put_all(pairs, collection="docstore/data")
    simple.persist(str(json_path))
    simple_put = time.perf_counter() - t
    t = time.perf_counter()
    assert len(SimpleKVStore.from_persist_path(str(json_path)).get_all("docstore/data")) == count
    simple_get = time.perf_counter() - t

    extra = ("one-more", pairs[0][1])
    t = time.perf_counter()
    writer.put(*extra, collection="docstore/data")
    sqlite_one = time.perf_counter() - t
    t = time.perf_counter()
    simple.put(*extra, collection="docstore/data")
    simple.persist(str(json_path))
    simple_one = time.perf_counter() - t
    return {
        "nodes": count,
        "sqlite_put_all_s": round(sqlite_put, 3),
        "sqlite_get_all_fresh_s": round(sqlite_get, 3),
        "simple_put_all_and_persist_s": round(simple_put, 3),
        "simple_load_and_get_all_s": round(simple_get, 3),
        "ratio_simple_over_sqlite_total": round((simple_put + simple_get) / (sqlite_put + sqlite_get), 2),
        "one_more_put_sqlite_ms": _ms(sqlite_one),
        "one_more_put_simple_with_persist_ms": _ms(simple_one),
    }


def _writer(db_path: str, name: str, count: int) -> None:
    """Child process: wait for "go" on stdin, then commit ``count`` small transactions; print start/end times."""
    kv = SQLiteKVStore(db_path)
    kv.get("warm-up")
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for i in range(count):
        kv.put(f"{name}-{i}", {"writer": name, "i": i}, collection="bench")
    print(json.dumps({"start": start, "end": time.time()}), flush=True)


def bench_writers(folder: Path, transactions: int) -> dict:
    result = {"transactions_per_writer": transactions}
    for writers in (1, 4):
        db_path = folder / f"writers{writers}.db"
        Database(db_path).close()
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--writer", str(db_path), f"w{i}", str(transactions)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for i in range(writers)
        ]
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        spans = [json.loads(proc.stdout.readline()) for proc in procs]
        assert all(proc.wait() == 0 for proc in procs), "a writer failed"
        seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
        assert Database(db_path).read("SELECT COUNT(*) FROM kv WHERE collection = 'bench'")[0][0] == writers * transactions
        result[f"tx_per_second_{writers}_writer{'s' if writers > 1 else ''}"] = round(writers * transactions / seconds)
        _progress(f"writers: {writers} done")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--kv-nodes", type=int, default=10_000)
    parser.add_argument("--tx", type=int, default=2000)
    parser.add_argument("--writer", nargs=3, metavar=("DB", "NAME", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        _writer(args.writer[0], args.writer[1], int(args.writer[2]))
        return
    with tempfile.TemporaryDirectory(prefix="docmind-bench-") as tmp:
        folder = Path(tmp)
        report = {
            "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": round(os.getloadavg()[0], 2)},
            "kv": bench_kv(folder, args.kv_nodes),
            "writers": bench_writers(folder, args.tx),
            "vector": bench_vectors(folder, args.vectors, args.dim),
        }
        report["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
