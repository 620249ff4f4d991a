"""Ingestion and retrieval: readers, the cached embedding pipeline, hybrid search with citations.

Names are imported on first use, so ``docmind ingest`` on an unchanged library never imports
LlamaIndex, torch or transformers.
"""

from docmind._lazy import lazy_getattr

_LAZY = {
    "Citation": "docmind.cache.retrieval",
    "HybridRetriever": "docmind.cache.retrieval",
    "Searcher": "docmind.cache.retrieval",
    "reciprocal_rank_fusion": "docmind.cache.retrieval",
    "Ingestor": "docmind.cache.ingest",
    "IngestReport": "docmind.cache.ingest",
    "IngestProgress": "docmind.cache.ingest",
    "ProgressCallback": "docmind.cache.ingest",
    "ingest_paths": "docmind.cache.ingest",
    "FileFailure": "docmind.cache.discovery",
    "DocumentInfo": "docmind.cache.documents",
    "DocumentNotFoundError": "docmind.cache.documents",
    "list_documents": "docmind.cache.documents",
    "remove_documents": "docmind.cache.documents",
    "remove_document": "docmind.cache.documents",
    "LibraryStats": "docmind.cache.documents",
    "library_stats": "docmind.cache.documents",
    "document_chunks": "docmind.cache.documents",
    "StoredUpload": "docmind.cache.library",
    "store_upload": "docmind.cache.library",
    "discard_upload": "docmind.cache.library",
    "library_dir": "docmind.cache.library",
    "EmbeddingModelError": "docmind.cache.embeddings",
    "UnreadableFileError": "docmind.cache.readers",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = sorted(_LAZY)
