"""The per-document cap: one long file cannot fill the top results, and a library of one file keeps its order;
file evidence: a file with two matching passages gains over a file with one."""

from __future__ import annotations

import pytest

from docmind.cache.retrieval import Citation, Fusion, cap_per_document, with_file_evidence


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


def test_a_file_whose_second_passage_also_matches_moves_up() -> None:
    """Weight 0.2: b gains 0.2 × c's 0.044 = 0.0088 (0.0538 > a's 0.05); c, of the same file, gains as much."""
    a, b, c = (Citation(source, None, f"passage {n}", score, n)
               for n, source, score in (("a", "x.md", 0.05), ("b", "y.md", 0.045), ("c", "y.md", 0.044)))
    cosine = {"a": 0.6, "b": 0.5, "c": 0.5}
    ranked = with_file_evidence([a, b, c], cosine, Fusion(file_evidence=0.2, evidence_similarity=0.5))
    assert [(r.chunk_id, round(r.score, 4)) for r in ranked] == [("b", 0.0538), ("c", 0.0528), ("a", 0.05)]
    assert with_file_evidence([a, b, c], cosine, Fusion(file_evidence=0.0)) == [a, b, c]


@pytest.mark.parametrize("cosine_of_c", [0.29, None])
def test_a_second_passage_unlike_the_question_is_no_evidence(cosine_of_c: float | None) -> None:
    """c's cosine under half the best (0.6), or unknown (found by keywords only): y gains nothing."""
    a, b, c = (Citation(source, None, f"passage {n}", score, n)
               for n, source, score in (("a", "x.md", 0.05), ("b", "y.md", 0.045), ("c", "y.md", 0.044)))
    cosine = {"a": 0.6, "b": 0.5} | ({"c": cosine_of_c} if cosine_of_c is not None else {})
    assert with_file_evidence([a, b, c], cosine, Fusion(file_evidence=0.2, evidence_similarity=0.5)) == [a, b, c]
