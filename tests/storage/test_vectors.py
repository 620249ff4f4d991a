"""SQLiteVectorStore: exact cosine search, filters, deletes, BM25 and the cross-process matrix cache."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from docmind.storage import Database, EmbeddingDimensionError, SQLiteVectorStore, UnsupportedFilterError
from docmind.storage import vectors as vectors_module
from docmind.storage.vectors import fts_query

DIM = 16


def _node(i: int, doc: str, vector, text: str | None = None, **metadata) -> TextNode:
    node = TextNode(
        id_=f"n{i}",
        text=text or f"chunk number {i} of {doc}",
        embedding=[float(x) for x in vector],
        metadata={"source": f"/docs/{doc}.pdf", "page": i % 3 + 1, "char_start": 10 * i, "char_end": 10 * i + 9, **metadata},
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


@pytest.fixture
def corpus():
    rng = np.random.default_rng(7)
    return rng.standard_normal((60, DIM)).astype(np.float32)


@pytest.fixture
def store(db_path, corpus):
    store = SQLiteVectorStore(db_path)
    store.add([_node(i, f"doc{i % 4}", vec) for i, vec in enumerate(corpus)])
    return store


def _query(vector, k=5, **kwargs) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=[float(x) for x in vector], similarity_top_k=k, **kwargs)


def test_query_is_exact_cosine_top_k(store, corpus):
    q = np.random.default_rng(1).standard_normal(DIM)
    result = store.query(_query(q, k=7))
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    expected = np.argsort(-(unit @ (q / np.linalg.norm(q))))[:7]
    assert result.ids == [f"n{i}" for i in expected]
    assert result.similarities == pytest.approx(list((unit @ (q / np.linalg.norm(q)))[expected]), abs=1e-5)
    assert [n.node_id for n in result.nodes] == result.ids


def test_nodes_round_trip_with_columns(store, db_path):
    [node] = store.get_nodes(node_ids=["n5"])
    assert node.text == "chunk number 5 of doc1"
    assert node.ref_doc_id == "doc1"
    assert node.metadata == {"source": "/docs/doc1.pdf", "page": 3, "char_start": 50, "char_end": 59}
    row = Database(db_path).read("SELECT source, page, ref_doc_id FROM chunks WHERE node_id = 'n5'")[0]
    assert tuple(row) == ("/docs/doc1.pdf", 3, "doc1")


def test_add_upserts_by_node_id_and_falls_back_to_file_path(store, db_path):
    replacement = TextNode(id_="n0", text="replaced", embedding=[1.0] * DIM, metadata={"file_path": "/other.txt"})
    store.add([replacement])
    db = Database(db_path)
    assert db.read("SELECT COUNT(*) FROM chunks")[0][0] == 60
    assert tuple(db.read("SELECT text, source, page FROM chunks WHERE node_id = 'n0'")[0]) == ("replaced", "/other.txt", None)
    assert store.query(_query([1.0] * DIM, k=1)).ids == ["n0"]


def _filters(*items, condition=FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters(filters=list(items), condition=condition)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (_filters(MetadataFilter(key="doc_id", value="doc2")), {i for i in range(60) if i % 4 == 2}),
        (_filters(MetadataFilter(key="ref_doc_id", value=["doc0", "doc3"], operator=FilterOperator.IN)), {i for i in range(60) if i % 4 in (0, 3)}),
        (_filters(MetadataFilter(key="source", value="/docs/doc1.pdf")), {i for i in range(60) if i % 4 == 1}),
        (_filters(MetadataFilter(key="source", value=["/docs/doc1.pdf"], operator=FilterOperator.IN)), {i for i in range(60) if i % 4 == 1}),
        (_filters(MetadataFilter(key="char_start", value=500, operator=FilterOperator.GTE)), set(range(50, 60))),
        (
            _filters(MetadataFilter(key="doc_id", value="doc1"), MetadataFilter(key="page", value=1), condition=FilterCondition.OR),
            {i for i in range(60) if i % 4 == 1 or i % 3 == 0},
        ),
        (_filters(MetadataFilter(key="doc_id", value=["doc0", "doc1", "doc2"], operator=FilterOperator.NIN)), {i for i in range(60) if i % 4 == 3}),
        (_filters(MetadataFilter(key="doc_id", value="doc0"), condition=FilterCondition.NOT), {i for i in range(60) if i % 4}),
    ],
)
def test_filters_restrict_search_and_get(store, filters, expected):
    result = store.query(_query(np.ones(DIM), k=100, filters=filters))
    assert {int(i[1:]) for i in result.ids} == expected
    assert {int(n.node_id[1:]) for n in store.get_nodes(filters=filters)} == expected


def test_query_doc_ids_and_node_ids(store):
    assert set(store.query(_query(np.ones(DIM), k=100, doc_ids=["doc3"])).ids) == {f"n{i}" for i in range(3, 60, 4)}
    assert set(store.query(_query(np.ones(DIM), k=100, node_ids=["n1", "n2", "missing"])).ids) == {"n1", "n2"}
    assert store.query(_query(np.ones(DIM), k=100, doc_ids=[])).ids == []
    assert len(store.query(_query(np.ones(DIM), k=100, node_ids=[])).ids) == 60  # what VectorStoreIndex passes
    assert store.get_nodes(node_ids=[]) == []
    store.delete_nodes(node_ids=[])
    assert len(store.get_nodes()) == 60


def test_unsupported_filter_is_a_clear_error(store):
    filters = _filters(MetadataFilter(key="tags", value="a", operator=FilterOperator.ANY))
    with pytest.raises(UnsupportedFilterError, match="'tags' any needs a list of values"):
        store.query(_query(np.ones(DIM), filters=filters))


def test_delete_by_ref_doc_nodes_and_clear(store):
    store.delete("doc0")
    remaining = {n.node_id for n in store.get_nodes()}
    assert remaining == {f"n{i}" for i in range(60) if i % 4}
    assert not set(store.query(_query(np.ones(DIM), k=100)).ids) - remaining
    store.delete_nodes(node_ids=["n1", "n2"])
    store.delete_nodes(filters=_filters(MetadataFilter(key="doc_id", value="doc3")))
    assert {n.node_id for n in store.get_nodes()} == {f"n{i}" for i in range(60) if i % 4 in (1, 2)} - {"n1", "n2"}
    store.clear()
    assert store.get_nodes() == []
    assert store.query(_query(np.ones(DIM))).ids == []


def test_fts_query_quotes_words_and_drops_stopwords():
    assert fts_query('What is the "deadline" for TAX-returns?') == '"deadline" OR "tax" OR "returns"'
    assert fts_query("the of THE") == '"the" OR "of"'  # only stopwords: keep them
    assert fts_query("?! -- **") == ""


def test_dimension_mismatch_is_a_clear_error(store):
    with pytest.raises(EmbeddingDimensionError, match="ingested with"):
        store.query(_query(np.ones(DIM + 1)))


def test_matrix_is_cached_until_a_chunk_changes(store, db_path):
    store.query(_query(np.ones(DIM)))
    cached = vectors_module._matrices[db_path.resolve()]
    store.query(_query(np.ones(DIM)))
    assert vectors_module._matrices[db_path.resolve()] is cached
    store.delete("doc1")
    store.query(_query(np.ones(DIM)))
    assert vectors_module._matrices[db_path.resolve()] is not cached


def test_appends_extend_the_cached_matrix_and_other_changes_reload_it(db_path, caplog):
    """Random adds, upserts and deletes between queries; every answer matches brute force over the table."""
    rng = np.random.default_rng(3)
    store = SQLiteVectorStore(db_path)
    truth: dict[str, np.ndarray] = {}
    caplog.set_level(logging.DEBUG, logger=vectors_module.__name__)
    paths = set()
    for step in range(40):
        action = rng.choice(["add", "add", "upsert", "delete", "null"]) if truth else "add"
        if action == "add":
            batch = {f"s{step}-{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(int(rng.integers(1, 5)))}
            store.add([TextNode(id_=k, text=k, embedding=v.tolist()) for k, v in batch.items()])
            truth.update(batch)
        elif action == "upsert":
            victim = str(rng.choice(sorted(truth)))
            truth[victim] = rng.standard_normal(DIM).astype(np.float32)
            store.add([TextNode(id_=victim, text=victim, embedding=truth[victim].tolist())])
        elif action == "delete":
            victim = str(rng.choice(sorted(truth)))
            store.delete_nodes(node_ids=[victim])
            del truth[victim]
        else:
            store.add([TextNode(id_=f"text-only-{step}", text="no embedding")])
        caplog.clear()
        q = rng.standard_normal(DIM)
        result = store.query(_query(q, k=3))
        [message] = [r.getMessage() for r in caplog.records]
        path = message.split()[0]
        assert path == ("loaded" if step == 0 or action in ("upsert", "delete") else "appended"), (step, action)
        paths.add(path)
        keys = sorted(truth)
        unit = np.stack([truth[k] / np.linalg.norm(truth[k]) for k in keys])
        expected = [keys[i] for i in np.argsort(-(unit @ (q / np.linalg.norm(q))))[:3]]
        assert result.ids == expected, (step, action)
    assert paths == {"loaded", "appended"}


def test_append_beyond_the_spare_rows_grows_the_matrix(db_path):
    store = SQLiteVectorStore(db_path)
    store.add([TextNode(id_="first", text="first", embedding=[1.0] + [0.0] * (DIM - 1))])
    store.query(_query(np.ones(DIM)))
    spare = len(vectors_module._matrices[db_path.resolve()].id_buffer)
    rng = np.random.default_rng(5)
    batch = rng.standard_normal((spare + 10, DIM)).astype(np.float32)
    store.add([TextNode(id_=f"b{i}", text="b", embedding=v.tolist()) for i, v in enumerate(batch)])
    result = store.query(_query(batch[spare], k=1))
    matrix = vectors_module._matrices[db_path.resolve()]
    assert result.ids == [f"b{spare}"]
    assert len(matrix.ids) == spare + 11 and len(matrix.id_buffer) > spare + 11
    assert store.query(_query([1.0] + [0.0] * (DIM - 1), k=1)).ids == ["first"]


def test_another_process_write_is_seen(store, db_path):
    target = -np.ones(DIM)
    assert store.query(_query(target, k=1)).ids != ["fresh"]
    script = textwrap.dedent(
        f"""
        from llama_index.core.schema import TextNode
        from docmind.storage import SQLiteVectorStore
        SQLiteVectorStore({str(db_path)!r}).add([TextNode(id_="fresh", text="from another process", embedding=[-1.0] * {DIM})])
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    result = store.query(_query(target, k=1))
    assert result.ids == ["fresh"]
    assert result.nodes[0].text == "from another process"


def test_text_search_bm25(db_path):
    store = SQLiteVectorStore(db_path)
    texts = {
        "a": "The invoice total is due within thirty days.",
        "b": "Payment terms: the invoice must be paid; invoice numbers are unique. Invoice!",
        "c": "Completely unrelated text about gardening and tomatoes.",
    }
    store.add([TextNode(id_=k, text=v, embedding=[1.0, 0.0], metadata={"source": f"/{k}.txt"}) for k, v in texts.items()])
    result = store.text_search("invoice", top_k=5)
    assert result.ids == ["b", "a"]
    assert result.similarities[0] > result.similarities[1] > 0
    assert store.text_search("tomatoes gardening", top_k=5).ids == ["c"]
    hostile = 'invoice" OR NOT (NEAR(x) c++ -x: *total* ^ \'quote\' {col}: ?'
    assert set(store.text_search(hostile, top_k=5).ids) == {"a", "b"}
    assert store.text_search("!!! ... ???", top_k=5).ids == []
    only_a = _filters(MetadataFilter(key="source", value="/a.txt"))
    assert store.text_search("invoice", top_k=5, filters=only_a).ids == ["a"]
    mode = VectorStoreQuery(query_str="invoice", similarity_top_k=1, mode=VectorStoreQueryMode.TEXT_SEARCH)
    assert store.query(mode).ids == ["b"]
    store.delete_nodes(node_ids=["b"])
    assert store.text_search("invoice", top_k=5).ids == ["a"]


async def test_async_methods(db_path, corpus):
    store = SQLiteVectorStore(db_path)
    await store.async_add([_node(i, f"doc{i % 2}", vec) for i, vec in enumerate(corpus[:10])])
    result = await store.aquery(_query(corpus[3], k=1))
    assert result.ids == ["n3"]
    assert [n.node_id for n in await store.aget_nodes(node_ids=["n4"])] == ["n4"]
    assert (await store.atext_search("number 7", top_k=1)).ids
    await store.adelete("doc0")
    await store.adelete_nodes(node_ids=["n1"])
    assert {n.node_id for n in await store.aget_nodes()} == {"n3", "n5", "n7", "n9"}
    await store.aclear()
    assert await store.aget_nodes() == []
