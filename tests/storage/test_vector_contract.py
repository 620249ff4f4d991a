"""SQLiteVectorStore is a drop-in for LlamaIndex's SimpleVectorStore: the same assertions run on both."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from docmind.storage import SQLiteVectorStore, StorageError

DIM = 8
METADATA = [
    ("docA", {"author": "ann", "year": 2020, "tags": ["a", "b"], "title": "Hello World", "rating": 4.5, "draft": False}),
    ("docA", {"author": "bob", "year": 2021, "tags": ["b"], "title": "hello there", "note": ""}),
    ("docB", {"author": "cy", "year": 2019, "tags": [], "title": "Über Café", "note": "x"}),
    ("docB", {"author": None, "year": 2022, "tags": ["c", "a"], "title": "no author"}),
    ("docC", {"author": "ann", "year": 2020, "title": "Ann again", "meta": {"k": 1}}),
    ("docC", {"author": "dee", "year": 2023, "title": "[x] \"quoted\" 'single'", "rating": 3}),
]
ALL = set(range(len(METADATA)))


def _embeddings() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((len(METADATA), DIM)).astype(np.float32)


def _nodes() -> list[TextNode]:
    nodes = []
    for i, ((doc, metadata), vector) in enumerate(zip(METADATA, _embeddings())):
        node = TextNode(id_=f"n{i}", text=f"text {i}", metadata=dict(metadata), embedding=vector.tolist())
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
        nodes.append(node)
    return nodes


@pytest.fixture(params=["simple", "sqlite"])
def store(request, db_path):
    """LlamaIndex's own SimpleVectorStore, then ours, holding the same nodes."""
    store = SimpleVectorStore() if request.param == "simple" else SQLiteVectorStore(db_path)
    store.add(_nodes())
    return store


@pytest.fixture(params=["simple", "sqlite"])
def empty_store(request, db_path):
    return SimpleVectorStore() if request.param == "simple" else SQLiteVectorStore(db_path)


def _f(key: str, value, operator: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=operator)


def _all(*filters, condition: FilterCondition = FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=condition)


def _ids(store, filters: MetadataFilters | None = None, **kwargs) -> set[int]:
    query = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=100, filters=filters, **kwargs)
    return {int(node_id[1:]) for node_id in store.query(query).ids}


OP = FilterOperator
FILTER_CASES = [
    (_all(_f("author", "ann")), {0, 4}),
    (_all(_f("author", "ann", OP.NE)), {1, 2, 3, 5}),
    (_all(_f("year", 2020, OP.GT)), {1, 3, 5}),
    (_all(_f("year", 2020, OP.GTE)), {0, 1, 3, 4, 5}),
    (_all(_f("year", 2020, OP.LT)), {2}),
    (_all(_f("year", 2020, OP.LTE)), {0, 2, 4}),
    (_all(_f("rating", 4.5)), {0}),
    (_all(_f("author", None)), set()),
    (_all(_f("author", None, OP.NE)), ALL),  # a present value is != None; a missing one counts as != too
    (_all(_f("draft", 0)), {0}),  # False == 0 in Python
    (_all(_f("title", "[x] \"quoted\" 'single'")), {5}),
    (_all(_f("author", ["ann", "bob"], OP.IN)), {0, 1, 4}),
    (_all(_f("author", ["ann"], OP.NIN)), {1, 2, 3, 5}),
    (_all(_f("year", [2019, 2023], OP.NIN)), {0, 1, 3, 4}),
    (_all(_f("missing", ["x"], OP.NIN)), ALL),
    (_all(_f("tags", "a", OP.CONTAINS)), {0, 3}),
    (_all(_f("title", "llo", OP.CONTAINS)), {0, 1}),
    (_all(_f("meta", "k", OP.CONTAINS)), {4}),
    (_all(_f("tags", ["a", "c"], OP.ANY)), {0, 3}),
    (_all(_f("tags", ["a", "b"], OP.ALL)), {0}),
    (_all(_f("tags", [], OP.ALL)), {0, 1, 2, 3}),
    (_all(_f("title", "ello", OP.TEXT_MATCH)), {0, 1}),
    (_all(_f("title", "Hello", OP.TEXT_MATCH)), {0}),
    (_all(_f("title", "HELLO", OP.TEXT_MATCH_INSENSITIVE)), {0, 1}),
    (_all(_f("title", "ÜBER", OP.TEXT_MATCH_INSENSITIVE)), {2}),
    (_all(_f("tags", None, OP.IS_EMPTY)), {2, 4, 5}),
    (_all(_f("note", None, OP.IS_EMPTY)), {0, 1, 3, 4, 5}),
    (_all(_f("author", None, OP.IS_EMPTY)), {3}),
    (_all(_f("doc_id", "docA")), {0, 1}),
    (_all(_f("ref_doc_id", ["docB", "docC"], OP.NIN)), {0, 1}),
    (_all(_f("author", "ann"), _f("year", 2020, OP.GTE)), {0, 4}),
    (_all(_f("author", "ann"), _f("tags", "c", OP.CONTAINS), condition=FilterCondition.OR), {0, 3, 4}),
    (_all(_f("author", "ann"), _f("year", 2021), condition=FilterCondition.NOT), {2, 3, 5}),
    (_all(_f("year", 2020, OP.GT), condition=FilterCondition.NOT), {0, 2, 4}),  # a missing key is "not matched"
    (_all(_f("author", ["ann"], OP.NIN), condition=FilterCondition.NOT), {0, 4}),
    (_all(), ALL),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_query_filters_match_llamaindex(store, filters, expected):
    assert _ids(store, filters) == expected


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_delete_nodes_with_filters_matches_llamaindex(store, filters, expected):
    store.delete_nodes(filters=filters)
    assert _ids(store) == ALL - expected


def test_delete_nodes_with_ids_and_filters(store):
    store.delete_nodes(node_ids=["n0", "n1", "n2"], filters=_all(_f("author", "ann", OP.NE)))
    assert _ids(store) == {0, 3, 4, 5}


@pytest.mark.parametrize("threshold", [None, 0.0, 0.3, 1.0])
def test_mmr_matches_llamaindex(store, threshold):
    query = [float(x) for x in np.random.default_rng(9).standard_normal(DIM)]
    expected_scores, expected_ids = get_top_k_mmr_embeddings(
        query, _embeddings().tolist(), similarity_top_k=4, embedding_ids=[f"n{i}" for i in range(len(METADATA))],
        mmr_threshold=threshold,
    )
    vsq = VectorStoreQuery(query_embedding=query, similarity_top_k=4, mode=VectorStoreQueryMode.MMR)
    result = store.query(vsq, mmr_threshold=threshold)
    assert result.ids == expected_ids
    assert result.similarities == pytest.approx(expected_scores, abs=1e-5)


def test_mmr_with_a_filter(store):
    query = VectorStoreQuery(query_embedding=[1.0] * DIM, similarity_top_k=10, mode=VectorStoreQueryMode.MMR,
                             filters=_all(_f("author", "ann")))
    assert sorted(store.query(query).ids) == ["n0", "n4"]


def test_source_and_file_path_are_distinct_keys(empty_store):
    """Ours keeps a ``source`` column (metadata source, else file_path) for its index: filters must not see it."""
    metadata = [{"file_path": "/a.pdf"}, {"source": "/a.pdf"}, {"source": "", "file_path": "/a.pdf"}, {"source": "/b.pdf"}]
    empty_store.add([TextNode(id_=f"n{i}", text="t", metadata=m, embedding=[1.0] * DIM) for i, m in enumerate(metadata)])
    assert _ids(empty_store, _all(_f("source", "/a.pdf"))) == {1}
    assert _ids(empty_store, _all(_f("source", ["/a.pdf", "/b.pdf"], OP.IN))) == {1, 3}
    assert _ids(empty_store, _all(_f("file_path", "/a.pdf"))) == {0, 2}
    assert _ids(empty_store, _all(_f("doc_id", "None"))) == {0, 1, 2, 3}  # nodes without a document


# ----- only ours: LlamaIndex's SimpleVectorStore refuses nested filters, ignores doc_ids and has no get_nodes -----


@pytest.fixture
def ours(db_path):
    store = SQLiteVectorStore(db_path)
    store.add(_nodes())
    return store


@pytest.fixture
def simple():
    store = SimpleVectorStore()
    store.add(_nodes())
    return store


def test_nested_filters_compose_like_their_parts(ours, simple):
    ann, recent, tagged_c = _all(_f("author", "ann")), _all(_f("year", 2021, OP.GTE)), _all(_f("tags", "c", OP.CONTAINS))
    nested = _all(_all(ann.filters[0], recent.filters[0], condition=FilterCondition.OR), _all(tagged_c.filters[0], condition=FilterCondition.NOT))
    expected = (_ids(simple, ann) | _ids(simple, recent)) & (ALL - _ids(simple, tagged_c))
    assert expected == {0, 1, 4, 5}
    assert _ids(ours, nested) == expected
    negated = _all(nested, condition=FilterCondition.NOT)
    assert _ids(ours, negated) == ALL - expected
    assert {int(n.node_id[1:]) for n in ours.get_nodes(filters=negated)} == ALL - expected


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_get_nodes_with_filters(ours, filters, expected):
    assert {int(n.node_id[1:]) for n in ours.get_nodes(filters=filters)} == expected


def test_doc_ids_restrict_and_empty_doc_ids_match_nothing(ours):
    assert _ids(ours, doc_ids=["docA", "docC"]) == {0, 1, 4, 5}
    assert _ids(ours, doc_ids=[]) == set()
    assert _ids(ours, _all(_f("author", "ann")), doc_ids=["docC"]) == {4}


def test_sqlite_errors_become_storage_errors(ours, db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE chunks")  # a schema the store does not expect: sqlite3 raises OperationalError
    conn.close()
    with pytest.raises(StorageError, match="no such table") as raised:
        ours.get_nodes(filters=_all(_f("author", ["ann"], OP.NIN)))
    assert not isinstance(raised.value, sqlite3.Error)
