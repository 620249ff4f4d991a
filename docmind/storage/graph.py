"""LlamaIndex graph stores on ``graph_nodes`` / ``graph_relations``.

``SQLitePropertyGraphStore`` is the labelled property graph (``PropertyGraphIndex``);
``SQLiteGraphStore`` serves the legacy triplet protocol that ``StorageContext.graph_store`` holds.
Both read and write the same two tables, so everything persists in the DocMind database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.graph_stores.types import (
    ChunkNode,
    EntityNode,
    GraphStore,
    LabelledNode,
    PropertyGraphStore,
    Relation,
    Triplet,
)
from llama_index.core.vector_stores.types import VectorStoreQuery

from docmind.storage.db import Database, open_database

_NODE_COLUMNS = ("id", "kind", "label", "name", "text", "properties", "embedding")
_UPSERT_NODE = """
    INSERT INTO graph_nodes (id, kind, label, name, text, properties, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, label = excluded.label, name = excluded.name,
        text = excluded.text, properties = excluded.properties, embedding = excluded.embedding
"""
_ENSURE_ENTITY = "INSERT OR IGNORE INTO graph_nodes (id, kind, label, name) VALUES (?, 'entity', 'entity', ?)"
_UPSERT_RELATION = """
    INSERT INTO graph_relations (source_id, label, target_id, properties) VALUES (?, ?, ?, ?)
    ON CONFLICT(source_id, label, target_id) DO UPDATE SET properties = excluded.properties
"""
_TRIPLETS = (
    "SELECT "
    + ", ".join(f"s.{c} AS s_{c}" for c in _NODE_COLUMNS)
    + ", r.label AS r_label, r.properties AS r_properties, "
    + ", ".join(f"t.{c} AS t_{c}" for c in _NODE_COLUMNS)
    + " FROM graph_relations r JOIN graph_nodes s ON s.id = r.source_id JOIN graph_nodes t ON t.id = r.target_id"
)


class SQLitePropertyGraphStore(PropertyGraphStore):
    """Entities, chunks and their relations in the DocMind database.

    ``delete`` follows the graph-database stores: nodes matched by name, id or property are
    removed with their relations; ``relation_names`` removes only those relations.
    """

    supports_structured_queries: bool = False
    supports_vector_queries: bool = False

    def __init__(self, db: str | Path | Database) -> None:
        self._db = open_database(db)

    @property
    def client(self) -> Database:
        return self._db

    def get(self, properties: dict | None = None, ids: list[str] | None = None) -> list[LabelledNode]:
        """Nodes having any of ``properties`` and, if given, one of ``ids``; all nodes when neither is given."""
        params: list[Any] = []
        parts = [_any_property("properties", properties, params), _in("id", ids, params)]
        where = " AND ".join(p for p in parts if p) or "1"
        rows = self._db.read(f"SELECT {', '.join(_NODE_COLUMNS)} FROM graph_nodes WHERE {where}", tuple(params))
        return [_node(row, "") for row in rows]

    def get_triplets(
        self,
        entity_names: list[str] | None = None,
        relation_names: list[str] | None = None,
        properties: dict | None = None,
        ids: list[str] | None = None,
    ) -> list[Triplet]:
        """Triplets matching every criterion given; none when no criterion is given."""
        if not (entity_names or relation_names or properties or ids):
            return []
        params: list[Any] = []
        parts = [
            _either_end(entity_names, params),
            _in("r.label", relation_names, params),
            _any_property_of_triplet(properties, params),
            _either_end(ids, params),
        ]
        where = " AND ".join(p for p in parts if p)
        return [_triplet(row) for row in self._db.read(f"{_TRIPLETS} WHERE {where}", tuple(params))]

    def get_rel_map(
        self,
        graph_nodes: list[LabelledNode],
        depth: int = 2,
        limit: int = 30,
        ignore_rels: list[str] | None = None,
    ) -> list[Triplet]:
        """Triplets reachable from ``graph_nodes`` within ``depth`` hops (ignored relations are not followed)."""
        ignore = set(ignore_rels or [])
        found: list[Triplet] = []
        seen: set[tuple[str, str, str]] = set()
        frontier = [node.id for node in graph_nodes]
        for hop in range(depth):
            if not frontier or len(found) >= limit:
                break
            step = self.get_triplets(ids=frontier) if hop == 0 else self.get_triplets(entity_names=frontier)
            frontier = []
            for subject, relation, target in step:
                key = (subject.id, relation.label, target.id)
                if key in seen or relation.label in ignore:
                    continue
                seen.add(key)
                found.append((subject, relation, target))
                frontier.append(target.id)
        return found[:limit]

    def upsert_nodes(self, nodes: Sequence[LabelledNode]) -> None:
        rows = [_node_row(node) for node in nodes]
        if rows:
            self._db.write(lambda conn: conn.executemany(_UPSERT_NODE, rows))

    def upsert_relations(self, relations: list[Relation]) -> None:
        """Insert or update ``relations``; a missing end node is created as a plain entity."""

        def write(conn) -> None:
            for relation in relations:
                conn.execute(_ENSURE_ENTITY, (relation.source_id, relation.source_id))
                conn.execute(_ENSURE_ENTITY, (relation.target_id, relation.target_id))
                conn.execute(
                    _UPSERT_RELATION,
                    (relation.source_id, relation.label, relation.target_id, json.dumps(relation.properties)),
                )

        if relations:
            self._db.write(write)

    def delete(
        self,
        entity_names: list[str] | None = None,
        relation_names: list[str] | None = None,
        properties: dict | None = None,
        ids: list[str] | None = None,
    ) -> None:
        """Delete the nodes named, with the ids or having any of ``properties`` (with their relations),
        and every relation labelled with one of ``relation_names``."""

        def write(conn) -> None:
            if entity_names:
                params: list[Any] = []
                conn.execute(f"DELETE FROM graph_nodes WHERE {_in('name', entity_names, params)}", params)
            if ids:
                params = []
                conn.execute(f"DELETE FROM graph_nodes WHERE {_in('id', ids, params)}", params)
            if properties:
                params = []
                conn.execute(f"DELETE FROM graph_nodes WHERE {_any_property('properties', properties, params)}", params)
            if relation_names:
                params = []
                conn.execute(f"DELETE FROM graph_relations WHERE {_in('label', relation_names, params)}", params)

        self._db.write(write)

    def structured_query(self, query: str, param_map: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError(
            "SQLitePropertyGraphStore does not run Cypher or other structured queries; "
            "use get, get_triplets or get_rel_map."
        )

    def vector_query(self, query: VectorStoreQuery, **kwargs: Any) -> tuple[list[LabelledNode], list[float]]:
        raise NotImplementedError(
            "SQLitePropertyGraphStore does not search node embeddings; "
            "use SQLiteVectorStore (PropertyGraphIndex(..., vector_store=...)) for vector retrieval."
        )

    async def aget(self, properties: dict | None = None, ids: list[str] | None = None) -> list[LabelledNode]:
        return await asyncio.to_thread(self.get, properties, ids)

    async def aget_triplets(
        self,
        entity_names: list[str] | None = None,
        relation_names: list[str] | None = None,
        properties: dict | None = None,
        ids: list[str] | None = None,
    ) -> list[Triplet]:
        return await asyncio.to_thread(self.get_triplets, entity_names, relation_names, properties, ids)

    async def aget_rel_map(
        self,
        graph_nodes: list[LabelledNode],
        depth: int = 2,
        limit: int = 30,
        ignore_rels: list[str] | None = None,
    ) -> list[Triplet]:
        return await asyncio.to_thread(self.get_rel_map, graph_nodes, depth, limit, ignore_rels)

    async def aupsert_nodes(self, nodes: list[LabelledNode]) -> None:
        await asyncio.to_thread(self.upsert_nodes, nodes)

    async def aupsert_relations(self, relations: list[Relation]) -> None:
        await asyncio.to_thread(self.upsert_relations, relations)

    async def adelete(
        self,
        entity_names: list[str] | None = None,
        relation_names: list[str] | None = None,
        properties: dict | None = None,
        ids: list[str] | None = None,
    ) -> None:
        await asyncio.to_thread(self.delete, entity_names, relation_names, properties, ids)

    async def astructured_query(self, query: str, param_map: dict[str, Any] | None = None) -> Any:
        return self.structured_query(query, param_map)

    async def avector_query(self, query: VectorStoreQuery, **kwargs: Any) -> tuple[list[LabelledNode], list[float]]:
        return self.vector_query(query, **kwargs)


class SQLiteGraphStore(GraphStore):
    """The legacy subject-relation-object protocol (``StorageContext.graph_store``) on the same tables."""

    schema: str = ""

    def __init__(self, db: str | Path | Database) -> None:
        self._db = open_database(db)

    @property
    def client(self) -> Database:
        return self._db

    def get(self, subj: str) -> list[list[str]]:
        rows = self._db.read("SELECT label, target_id FROM graph_relations WHERE source_id = ? ORDER BY rowid", (subj,))
        return [[label, target] for label, target in rows]

    def get_rel_map(
        self, subjs: list[str] | None = None, depth: int = 2, limit: int = 30
    ) -> dict[str, list[list[str]]]:
        """For each subject, ``[subject, relation, object]`` paths up to ``depth`` hops; ``limit`` in all."""
        if subjs is None:
            subjs = [row[0] for row in self._db.read("SELECT DISTINCT source_id FROM graph_relations")]
        rel_map: dict[str, list[list[str]]] = {}
        budget = limit
        for subj in subjs:
            paths = self._paths(subj, depth, budget)
            rel_map[subj] = paths
            budget -= len(paths)
            if budget <= 0:
                break
        return rel_map

    def _paths(self, subj: str, depth: int, limit: int) -> list[list[str]]:
        paths: list[list[str]] = []
        if depth <= 0:
            return paths
        for rel, obj in self.get(subj):
            if len(paths) >= limit:
                break
            paths.append([subj, rel, obj])
            paths += self._paths(obj, depth - 1, limit - len(paths))
        return paths[:limit]

    def upsert_triplet(self, subj: str, rel: str, obj: str) -> None:
        def write(conn) -> None:
            conn.execute(_ENSURE_ENTITY, (subj, subj))
            conn.execute(_ENSURE_ENTITY, (obj, obj))
            conn.execute(
                "INSERT OR IGNORE INTO graph_relations (source_id, label, target_id) VALUES (?, ?, ?)", (subj, rel, obj)
            )

        self._db.write(write)

    def delete(self, subj: str, rel: str, obj: str) -> None:
        self._db.execute(
            "DELETE FROM graph_relations WHERE source_id = ? AND label = ? AND target_id = ?", (subj, rel, obj)
        )

    def get_schema(self, refresh: bool = False) -> str:
        return self.schema

    def query(self, query: str, param_map: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError("SQLiteGraphStore does not run graph queries; use get or get_rel_map.")


# ----- rows and nodes -----


def _node_row(node: LabelledNode) -> tuple:
    if isinstance(node, ChunkNode):
        kind, name, text = "chunk", None, node.text
    elif isinstance(node, EntityNode):
        kind, name, text = "entity", node.name, None
    else:
        raise TypeError(f"SQLitePropertyGraphStore stores EntityNode and ChunkNode, not {type(node).__name__}.")
    embedding = None if node.embedding is None else np.asarray(node.embedding, dtype=np.float32).tobytes()
    return (node.id, kind, node.label, name, text, json.dumps(node.properties), embedding)


def _node(row: Any, prefix: str) -> LabelledNode:
    def col(name: str) -> Any:
        return row[prefix + name]

    blob = col("embedding")
    common = {
        "label": col("label"),
        "properties": json.loads(col("properties")),
        "embedding": None if blob is None else np.frombuffer(blob, dtype=np.float32).tolist(),
    }
    if col("kind") == "chunk":
        return ChunkNode(text=col("text") or "", id_=col("id"), **common)
    return EntityNode(name=col("name") or col("id"), **common)


def _triplet(row: Any) -> Triplet:
    source, target = _node(row, "s_"), _node(row, "t_")
    relation = Relation(
        label=row["r_label"], source_id=row["s_id"], target_id=row["t_id"], properties=json.loads(row["r_properties"])
    )
    return source, relation, target


# ----- SQL fragments (each appends its parameters and returns "" when it does not restrict) -----


def _in(column: str, values: list[str] | None, params: list) -> str:
    if values is None:
        return ""
    if not values:
        return "0"
    params.extend(values)
    return f"{column} IN ({','.join('?' * len(values))})"


def _either_end(ids: list[str] | None, params: list) -> str:
    if not ids:
        return ""
    return f"({_in('r.source_id', ids, params)} OR {_in('r.target_id', ids, params)})"


def _property_equals(column: str, key: str, value: Any, params: list) -> str:
    params.append('$."' + key.replace('"', '\\"') + '"')
    if isinstance(value, (list, dict)):
        params.append(json.dumps(value, separators=(",", ":")))
    else:
        params.append(value)
    return f"json_extract({column}, ?) = ?"


def _any_property(column: str, properties: dict | None, params: list) -> str:
    if not properties:
        return ""
    return "(" + " OR ".join(_property_equals(column, k, v, params) for k, v in properties.items()) + ")"


def _any_property_of_triplet(properties: dict | None, params: list) -> str:
    if not properties:
        return ""
    parts = [_any_property(column, properties, params) for column in ("s.properties", "r.properties", "t.properties")]
    return "(" + " OR ".join(parts) + ")"
