"""SQLitePropertyGraphStore and the legacy SQLiteGraphStore on the DocMind database."""

from __future__ import annotations

import pytest
from llama_index.core.graph_stores.types import ChunkNode, EntityNode, PropertyGraphStore, Relation
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from docmind.storage import Database, SQLiteGraphStore, SQLitePropertyGraphStore


@pytest.fixture
def graph(db_path):
    store = SQLitePropertyGraphStore(db_path)
    store.upsert_nodes(
        [
            EntityNode(name="Ada", label="PERSON", properties={"born": 1815, "triplet_source_id": "c1"}),
            EntityNode(name="Babbage", label="PERSON", properties={"born": 1791}),
            EntityNode(name="Engine", label="MACHINE", embedding=[0.5, 0.25]),
            ChunkNode(text="Ada wrote notes on the Engine.", id_="c1", properties={"ref_doc_id": "doc1"}),
        ]
    )
    store.upsert_relations(
        [
            Relation(label="WORKED_WITH", source_id="Ada", target_id="Babbage"),
            Relation(label="DESIGNED", source_id="Babbage", target_id="Engine", properties={"year": 1837}),
            Relation(label="BUILT_BY", source_id="Engine", target_id="Factory"),
        ]
    )
    return store


def _names(triplets) -> list[tuple[str, str, str]]:
    return sorted((s.id, r.label, t.id) for s, r, t in triplets)


def test_nodes_persist_and_round_trip(graph, db_path):
    assert isinstance(graph, PropertyGraphStore)
    fresh = SQLitePropertyGraphStore(Database(db_path))
    by_id = {n.id: n for n in fresh.get()}
    assert set(by_id) == {"Ada", "Babbage", "Engine", "Factory", "c1"}
    assert by_id["Ada"] == EntityNode(name="Ada", label="PERSON", properties={"born": 1815, "triplet_source_id": "c1"})
    assert by_id["Engine"].embedding == [0.5, 0.25]
    assert by_id["c1"] == ChunkNode(text="Ada wrote notes on the Engine.", id_="c1", properties={"ref_doc_id": "doc1"})
    assert by_id["Factory"].label == "entity"  # created by the relation that names it
    assert [n.id for n in fresh.get(properties={"born": 1791})] == ["Babbage"]
    assert [n.id for n in fresh.get(properties={"born": 1815}, ids=["Babbage"])] == []


def test_upserts_update_in_place_and_keep_relations(graph):
    graph.upsert_nodes([EntityNode(name="Babbage", label="PERSON", properties={"born": 1792})])
    graph.upsert_relations([Relation(label="DESIGNED", source_id="Babbage", target_id="Engine", properties={"year": 1834})])
    assert graph.get(ids=["Babbage"])[0].properties == {"born": 1792}
    [(_, relation, _)] = graph.get_triplets(relation_names=["DESIGNED"])
    assert relation.properties == {"year": 1834}
    assert len(graph.get_triplets(ids=["Babbage"])) == 2


def test_get_triplets_filters(graph):
    assert graph.get_triplets() == []
    assert _names(graph.get_triplets(entity_names=["Babbage"])) == [
        ("Ada", "WORKED_WITH", "Babbage"),
        ("Babbage", "DESIGNED", "Engine"),
    ]
    assert _names(graph.get_triplets(relation_names=["BUILT_BY"])) == [("Engine", "BUILT_BY", "Factory")]
    assert _names(graph.get_triplets(properties={"year": 1837})) == [("Babbage", "DESIGNED", "Engine")]
    assert _names(graph.get_triplets(ids=["Engine"], relation_names=["DESIGNED"])) == [("Babbage", "DESIGNED", "Engine")]


def test_get_rel_map_follows_depth_limit_and_ignore(graph):
    [ada] = graph.get(ids=["Ada"])
    assert _names(graph.get_rel_map([ada], depth=1)) == [("Ada", "WORKED_WITH", "Babbage")]
    assert _names(graph.get_rel_map([ada], depth=3)) == [
        ("Ada", "WORKED_WITH", "Babbage"),
        ("Babbage", "DESIGNED", "Engine"),
        ("Engine", "BUILT_BY", "Factory"),
    ]
    assert len(graph.get_rel_map([ada], depth=3, limit=2)) == 2
    assert _names(graph.get_rel_map([ada], depth=3, ignore_rels=["DESIGNED"])) == [("Ada", "WORKED_WITH", "Babbage")]


def test_delete_nodes_cascades_relations(graph):
    graph.delete(entity_names=["Engine"])
    assert "Engine" not in {n.id for n in graph.get()}
    assert _names(graph.get_triplets(entity_names=["Ada", "Babbage", "Factory"])) == [("Ada", "WORKED_WITH", "Babbage")]
    graph.delete(relation_names=["WORKED_WITH"])
    assert graph.get_triplets(ids=["Ada"]) == []
    assert {"Ada", "Babbage"} <= {n.id for n in graph.get()}
    graph.delete(properties={"born": 1791})
    graph.delete(ids=["Factory"])
    assert {n.id for n in graph.get()} == {"Ada", "c1"}


def test_llama_nodes_through_the_base_class(db_path):
    graph = SQLitePropertyGraphStore(db_path)
    graph.upsert_llama_nodes([TextNode(id_="t1", text="some chunk", metadata={"source": "/a.txt"})])
    [node] = graph.get_llama_nodes(["t1"])
    assert (node.id_, node.text, node.metadata["source"]) == ("t1", "some chunk", "/a.txt")
    graph.delete_llama_nodes(node_ids=["t1"])
    assert graph.get() == []


def test_unsupported_queries_say_so(graph):
    with pytest.raises(NotImplementedError, match="Cypher"):
        graph.structured_query("MATCH (n) RETURN n")
    with pytest.raises(NotImplementedError, match="SQLiteVectorStore"):
        graph.vector_query(VectorStoreQuery(query_embedding=[1.0, 0.0]))


async def test_async_methods(graph):
    await graph.aupsert_nodes([EntityNode(name="Lovelace", label="PERSON")])
    await graph.aupsert_relations([Relation(label="SAME_AS", source_id="Ada", target_id="Lovelace")])
    assert [n.id for n in await graph.aget(ids=["Lovelace"])] == ["Lovelace"]
    assert _names(await graph.aget_triplets(relation_names=["SAME_AS"])) == [("Ada", "SAME_AS", "Lovelace")]
    [ada] = await graph.aget(ids=["Ada"])
    assert len(await graph.aget_rel_map([ada], depth=1)) == 2
    await graph.adelete(ids=["Lovelace"])
    assert await graph.aget(ids=["Lovelace"]) == []
    with pytest.raises(NotImplementedError):
        await graph.astructured_query("MATCH (n) RETURN n")


def test_legacy_graph_store(db_path):
    legacy = SQLiteGraphStore(db_path)
    legacy.upsert_triplet("Ada", "WORKED_WITH", "Babbage")
    legacy.upsert_triplet("Ada", "WORKED_WITH", "Babbage")
    legacy.upsert_triplet("Babbage", "DESIGNED", "Engine")
    fresh = SQLiteGraphStore(Database(db_path))
    assert fresh.get("Ada") == [["WORKED_WITH", "Babbage"]]
    assert fresh.get_rel_map(["Ada"], depth=2) == {
        "Ada": [["Ada", "WORKED_WITH", "Babbage"], ["Babbage", "DESIGNED", "Engine"]]
    }
    assert fresh.get_rel_map(["Ada"], depth=1) == {"Ada": [["Ada", "WORKED_WITH", "Babbage"]]}
    fresh.delete("Ada", "WORKED_WITH", "Babbage")
    assert legacy.get("Ada") == []
    with pytest.raises(NotImplementedError):
        legacy.query("MATCH (n) RETURN n")
