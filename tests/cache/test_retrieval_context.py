"""Chunks carry their section context (title › headings) into what is embedded, and show their original text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from docmind.cache import Ingestor, Searcher
from docmind.cache.embedding_cache import embed_text
from docmind.cache.embeddings import default_embed_model_path, load_embed_model
from docmind.cache.readers import read_file
from docmind.config import Settings
from docmind.storage import open_database

MARKDOWN = """# Garden handbook

Intro to the handbook.

## Watering

### Tomatoes

Give them a deep soak twice a week in dry spells.

## Pruning

Cut roses back in late winter.
"""

RST = """=========
Kitchen
=========

Stocking up
===========

Buy flour in bulk.

Knives
------

Hone the blade before each use.
"""

HTML = """<html><head><title>Boat care</title></head><body><nav>menu</nav><main>
<h1>Boat care</h1><p>All about boats.</p>
<h2><span>1.</span> Hull</h2><p>Scrub the hull each spring.</p>
<h3>1.1. Antifouling</h3><p>Paint antifouling every two years.</p>
</main></body></html>"""


def make_outlined_pdf(path: Path, pages: list[tuple[str, str]]) -> Path:
    """A PDF whose pages each start with a heading that is also a bookmark."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)  # its title is reportlab's "untitled": the file name stands in
    for number, (heading, text) in enumerate(pages):
        pdf.bookmarkPage(f"p{number}")
        pdf.addOutlineEntry(heading, f"p{number}", level=0)
        pdf.drawString(50, 800, heading)
        pdf.drawString(50, 780, text)
        pdf.showPage()
    pdf.save()
    return path


def _contexts(settings: Settings) -> dict[str, str]:
    rows = open_database(settings.db_path).read(
        "SELECT text, json_extract(metadata, '$.context') FROM chunks ORDER BY id"
    )
    return {row[0]: row[1] for row in rows}


@pytest.mark.parametrize(
    ("name", "content", "passage", "context"),
    [
        ("garden.md", MARKDOWN, "deep soak", "Garden handbook › Watering › Tomatoes"),
        ("garden.md", MARKDOWN, "late winter", "Garden handbook › Pruning"),
        ("kitchen.rst", RST, "Hone the blade", "Kitchen › Stocking up › Knives"),
        ("boat.html", HTML, "Paint antifouling", "Boat care › 1. Hull › 1.1. Antifouling"),
    ],
)
def test_readers_find_the_heading_path_of_each_passage(name: str, content: str, passage: str, context: str) -> None:
    sections = read_file(content.encode(), Path(name))
    section = sections[0]
    at = section.text.index(passage)
    above = [h for h in section.headings if h.offset <= at]
    path: list[tuple[int, str]] = []
    for heading in above:
        path = [(level, text) for level, text in path if level < heading.level] + [(heading.level, heading.text)]
    names = [text for _, text in path]
    assert " › ".join([section.title, *names[1:]]) == context


def test_chunks_embed_their_context_but_show_their_text(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "garden.md").write_text(MARKDOWN)
    (folder / "boat.html").write_text(HTML)
    make_outlined_pdf(folder / "manual.pdf", [("Unpacking", "Keep the foam inserts."), ("Descaling", "Use citric acid.")])
    Ingestor(settings).ingest([folder])

    rows = open_database(settings.db_path).read(
        "SELECT source, page, text, json_extract(metadata, '$.context') AS context, embedding FROM chunks"
    )
    by_source = {(Path(row["source"]).name, row["page"]): row for row in rows}
    assert by_source[("manual.pdf", 2)]["context"] == "manual.pdf › Descaling"
    assert by_source[("boat.html", None)]["context"].startswith("Boat care")
    model = load_embed_model(default_embed_model_path())
    for row in rows:
        assert row["context"] and "›" not in row["text"]  # the context is embedded, never shown
        stored = np.frombuffer(row["embedding"], dtype=np.float32)
        expected = np.asarray(model.get_text_embedding(embed_text(row["text"], row["context"])), dtype=np.float32)
        assert np.allclose(stored, expected, atol=1e-4)
    hits = Searcher(settings).search("deep soak twice a week", 1)
    assert "Give them a deep soak" in hits[0].text and "›" not in hits[0].text


def _identity_before_context(path: Path) -> str:
    """The embedding model identity that DocMind recorded before chunks carried their context."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + file.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{path.name}:{digest.hexdigest()[:16]}"


def test_a_library_embedded_without_context_is_upgraded_once(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "garden.md").write_text(MARKDOWN)
    (folder / "kitchen.rst").write_text(RST)
    first = Ingestor(settings).ingest([folder])
    db = open_database(settings.db_path)
    old = _identity_before_context(default_embed_model_path())
    assert old != Ingestor(settings).identity
    db.write(lambda conn: conn.execute("UPDATE documents SET embed_model = ?", (old,)))
    db.write(lambda conn: conn.execute("UPDATE chunks SET metadata = json_remove(metadata, '$.context')"))
    db.write(lambda conn: conn.execute("DELETE FROM kv WHERE collection LIKE 'embeddings/%'"))  # an old cache never held these

    assert Searcher(settings).search("Hone the blade", 1)  # the old library still answers (by keywords)
    upgrade = Ingestor(settings).ingest([folder / "garden.md"])
    assert any("embedding model changed" in notice for notice in upgrade.notices)
    assert upgrade.files_changed == 2  # every document, not only the path given
    assert upgrade.embeddings_computed == first.embeddings_computed
    assert all(_contexts(settings).values())
    again = Ingestor(settings).ingest([folder])
    assert (again.files_unchanged, again.embeddings_computed, again.notices) == (2, 0, [])
    assert Searcher(settings).search("sharpening knives", 1, mode="vector")[0].source.endswith("kitchen.rst")
