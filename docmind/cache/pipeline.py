"""The LlamaIndex ingestion pipeline for one file: cleaning, ``SentenceSplitter``, section context, cached embedding.

Each chunk carries its ``context``: the file's title and the headings down to its section (for
example "Options › Boolean Flags"). The context is embedded with the chunk's text, while the text
shown and cited stays the original passage.

The stock ``IngestionCache`` keys a transformation on all of its input nodes together, so one edited
chunk misses the whole file. ``CachedEmbedding`` instead looks each chunk up by the hash of its text
in an ``IngestionCache`` over the SQLite kv table, one collection per embedding model, and embeds only
the misses. The cache is shared by every process using the same data dir.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llama_index.core import Document
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode, TransformComponent
from pydantic import ConfigDict, PrivateAttr

from docmind.cache.embedding_cache import cache_collection, embed_text, text_key
from docmind.cache.embeddings import DEFAULT_EMBED_BACKEND, EMBED_BATCH_SIZE, load_embed_model
from docmind.cache.readers import Section

CHUNK_SIZE = 256  # MiniLM reads only the first 256 word-pieces of a chunk
CHUNK_OVERLAP = 32
CHUNK_METADATA_KEYS = ["source", "page", "char_start", "char_end", "context"]
CONTEXT_SEPARATOR = " › "
_OUTLINE_KEY = "outline"  # a document's [offset, context] pairs; read by ``SectionContext``, not kept on chunks

_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def clean_text(text: str) -> str:
    """Normalise a reader's text: NFKC (ligatures), no control characters, rejoined hyphenated
    line breaks, single spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class SectionContext(TransformComponent):
    """Give each chunk the context (title › headings) in force where it starts, from its document's outline."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        for node in nodes:
            outline = node.metadata.get(_OUTLINE_KEY) or []
            node.metadata = {key: value for key, value in node.metadata.items() if key != _OUTLINE_KEY}
            start = node.start_char_idx or 0
            # a heading within the first third of the chunk names it better than the one before
            position = start + len(node.get_content()) // 3
            context = ""
            for offset, path in outline:
                if offset > position:
                    break
                context = path
            node.metadata["context"] = context
        return nodes


def _encode(vector: Sequence[float]) -> str:
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode("ascii")


def _decode(value: str) -> list[float]:
    return np.frombuffer(base64.b64decode(value), dtype=np.float32).tolist()


class CachedEmbedding(TransformComponent):
    """Embed nodes, reusing any chunk text already embedded by this model (in any file, by any process)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cache: IngestionCache
    model_path: str
    identity: str
    backend: str = DEFAULT_EMBED_BACKEND
    batch_size: int = EMBED_BATCH_SIZE

    _computed: int = PrivateAttr(default=0)
    _reused: int = PrivateAttr(default=0)
    _seconds: float = PrivateAttr(default=0.0)
    _on_batch: Callable[[int], None] | None = PrivateAttr(default=None)

    @property
    def collection(self) -> str:
        return cache_collection(self.identity)

    def take_counters(self) -> tuple[int, int, float]:
        """Return (embeddings computed, chunks found in the cache, seconds in the model) since the last
        call, and reset them."""
        counters = (self._computed, self._reused, self._seconds)
        self._computed, self._reused, self._seconds = 0, 0, 0.0
        return counters

    def on_batch(self, callback: Callable[[int], None] | None) -> None:
        """Call ``callback(chunks_embedded)`` after each model batch (for progress bars)."""
        self._on_batch = callback

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        missing: dict[str, list[BaseNode]] = {}
        for node in nodes:
            key = text_key(embedded_text(node))
            cached = self.cache.cache.get(key, collection=self.collection)
            if cached is not None:
                node.embedding = _decode(cached["embedding"])
                self._reused += 1
            else:
                missing.setdefault(key, []).append(node)
        keys = sorted(missing, key=lambda key: len(embedded_text(missing[key][0])))  # batches of like length pad less
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            texts = [embedded_text(missing[key][0]) for key in batch]
            began = time.perf_counter()
            vectors = load_embed_model(Path(self.model_path), self.backend).get_text_embedding_batch(texts)
            self._seconds += time.perf_counter() - began
            self._computed += len(batch)
            for key, vector in zip(batch, vectors):
                for node in missing[key]:
                    node.embedding = list(vector)
            self.cache.cache.put_all(
                [(key, {"embedding": _encode(vector)}) for key, vector in zip(batch, vectors)],
                collection=self.collection,
            )
            if self._on_batch is not None:
                self._on_batch(len(batch))
        return nodes


def embedded_text(node: BaseNode) -> str:
    """What the embedding model reads for a chunk: its context line, then its text."""
    return embed_text(node.get_content(metadata_mode=MetadataMode.NONE), node.metadata.get("context"))


def _documents(file: FileChunks, sections: list[Section]) -> list[Document]:
    """One LlamaIndex document per section: cleaned text, with the outline of contexts that ``SectionContext`` reads.

    The heading path in force is carried across pages, and across windows of pages in ``file``."""
    documents = []
    source = str(file.source)
    for section in sections:
        text, outline, file.heading_path = _outlined(section, file.title, file.heading_path)
        document = Document(
            text=text,
            id_=f"{source}#page={section.page}" if section.page is not None else source,
            metadata={"source": source, "page": section.page, _OUTLINE_KEY: outline},
            excluded_embed_metadata_keys=CHUNK_METADATA_KEYS + [_OUTLINE_KEY],
            excluded_llm_metadata_keys=CHUNK_METADATA_KEYS + [_OUTLINE_KEY],
        )
        documents.append(document)
    return documents


def _outlined(
    section: Section, title: str, path: list[tuple[int, str]]
) -> tuple[str, list[tuple[int, str]], list[tuple[int, str]]]:
    """Clean the section's text piece by piece between its headings, so each heading's offset stays known.

    Returns the cleaned text, its outline (offset, context) starting with the context inherited from
    earlier pages, and the heading path in force at its end.
    """
    raw = section.text
    headings = sorted((h for h in section.headings if 0 <= h.offset <= len(raw)), key=lambda h: h.offset)
    cuts = [heading.offset for heading in headings]
    pieces = [raw[start:end] for start, end in zip([0, *cuts], [*cuts, len(raw)])]
    text = ""
    outline = [(0, _context(title, path))]
    for index, piece in enumerate(pieces):
        if index > 0:
            heading = headings[index - 1]
            path = [(level, name) for level, name in path if level < heading.level] + [(heading.level, heading.text)]
            outline.append((len(text) + 2 if text else 0, _context(title, path)))
        cleaned = clean_text(piece)
        if cleaned:
            text = f"{text}\n\n{cleaned}" if text else cleaned
    return text, outline, path


def _context(title: str, path: list[tuple[int, str]]) -> str:
    """"Title › heading › subheading"; empty for a file with neither (so equal texts share one embedding)."""
    if not title:
        return ""
    names = [name for _, name in path]
    if names and names[0].casefold() == title.casefold():
        names = names[1:]
    return CONTEXT_SEPARATOR.join([title, *names])


def chunk_id(source: str, page: int | None, ordinal: int, text: str) -> str:
    """A stable node id: the same chunk of the same file keeps its id across re-ingests."""
    digest = hashlib.sha256(f"{source}\0{page}\0{ordinal}\0{text}".encode()).hexdigest()
    return digest[:32]


def build_pipeline(embedder: CachedEmbedding) -> IngestionPipeline:
    """Splitting, section context and per-chunk cached embedding (``chunk_files`` cleans the text first).

    The pipeline-level cache is off: it would key whole files and store every node as JSON
    (``embedder`` caches per chunk instead), and chunks are written by the caller in one
    transaction with the file's ``documents`` row, so a crash never leaves half a file.
    """
    return IngestionPipeline(
        transformations=[
            SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP, paragraph_separator="\n\n"),
            SectionContext(),
            embedder,
        ],
        disable_cache=True,
    )


@dataclass
class FileChunks:
    """One file chunked a window of pages at a time: what carries over from one window to the next."""

    source: Path
    title: str  # see ``readers.PagedFile.title``
    heading_path: list[tuple[int, str]] = field(default_factory=list)
    numbered: int = 0  # chunks given an id so far


def chunk_sections(pipeline: IngestionPipeline, pieces: list[tuple[FileChunks, list[Section]]]) -> list[list[TextNode]]:
    """Run windows of sections of several files (at most one window per file) through ``pipeline`` at once,
    so embedding batches span files.

    Returns each window's embedded chunks, with ids stable across re-ingests and their citation metadata.
    """
    documents = [document for file, sections in pieces for document in _documents(file, sections)]
    chunks: dict[str, list[TextNode]] = {str(file.source): [] for file, _ in pieces}
    for node in pipeline.run(documents=documents):
        if isinstance(node, TextNode) and node.text.strip():
            chunks[node.metadata["source"]].append(node)
    for file, _ in pieces:
        source = str(file.source)
        for node in chunks[source]:
            node.id_ = chunk_id(source, node.metadata.get("page"), file.numbered, node.text)
            file.numbered += 1
            node.metadata["char_start"] = node.start_char_idx
            node.metadata["char_end"] = node.end_char_idx
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=source)
            node.relationships.pop(NodeRelationship.PREVIOUS, None)
            node.relationships.pop(NodeRelationship.NEXT, None)
    return [chunks[str(file.source)] for file, _ in pieces]
