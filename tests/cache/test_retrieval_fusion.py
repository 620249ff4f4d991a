"""The per-document cap: one long file cannot fill the top results, and a library of one file keeps its order."""

from __future__ import annotations

from docmind.cache.retrieval import Citation, cap_per_document


def _ranked(*sources: str) -> list[Citation]:
    return [Citation(source, None, f"passage {rank}", 1.0 / rank, f"id{rank}") for rank, source in enumerate(sources, 1)]


def test_a_files_chunks_past_the_cap_move_behind_other_files() -> None:
    ranked = _ranked("long.pdf", "long.pdf", "long.pdf", "long.pdf", "short.md", "other.txt")
    capped = cap_per_document(ranked, 2)
    assert [c.source for c in capped] == ["long.pdf", "long.pdf", "short.md", "other.txt", "long.pdf", "long.pdf"]
    assert [c.chunk_id for c in capped] == ["id1", "id2", "id5", "id6", "id3", "id4"]


def test_one_file_keeps_its_order_and_a_zero_cap_changes_nothing() -> None:
    single = _ranked("manual.pdf", "manual.pdf", "manual.pdf")
    assert cap_per_document(single, 1) == single
    mixed = _ranked("a", "a", "b")
    assert cap_per_document(mixed, 0) == mixed
