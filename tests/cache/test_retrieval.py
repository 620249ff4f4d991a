"""Hybrid retrieval on real embeddings: BM25 finds what vectors miss, vectors find what BM25 misses."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.schema import QueryBundle

from docmind.cache import Citation, HybridRetriever, Ingestor, Searcher, reciprocal_rank_fusion
from docmind.cache.retrieval import Candidates, Fusion, UnknownTerms, decisiveness, list_weights, query_terms, question_parts
from docmind.config import Settings, load_settings
from tests.cache.files import make_pdf

SIMILAR_PARTS = ["QX-7713-B", "QX-7371-B", "QX-1773-B", "QX-3177-B", "QX-7137-B", "QX-7317-B", "QX-1377-B"]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embed_model) -> tuple[Settings, Path]:
    """One small library shared by this module's read-only tests."""
    root = tmp_path_factory.mktemp("library")
    settings = load_settings(data_dir=root / "data")
    folder = root / "docs"
    folder.mkdir()
    (folder / "maintenance.txt").write_text(
        "The maintenance log for the north warehouse lists routine checks of the loading dock doors, lighting "
        "and the sprinkler system. Replacement gasket QX-7731-B was fitted to the rear pump during the spring "
        "inspection, and the technician noted no leaks afterwards."
    )
    for i, part in enumerate(SIMILAR_PARTS):
        (folder / f"part{i}.txt").write_text(f"Part number {part}: replacement gasket specification sheet for part {part}.")
    (folder / "puppies.txt").write_text(
        "Puppies gnaw on sofas and table legs when they are bored or teething. Offer sturdy rubber toys, "
        "reward calm behaviour, and keep shoes out of reach."
    )
    (folder / "password.txt").write_text("How do I change my password? Open the settings page from the account menu.")
    (folder / "customs.txt").write_text("My garden furniture was stopped at customs; how do I pay the import fee?")
    (folder / "engine.txt").write_text("Stop the engine before you open the bonnet, and do not touch the radiator cap.")
    make_pdf(folder / "manual.pdf", [
        "Unpacking: remove the espresso machine from its box and keep the foam inserts.",
        "Filling the water tank: use cold filtered water up to the MAX line.",
        "Descaling: every three months run the descaling solution through the steam wand and group head.",
    ])
    report = Ingestor(settings).ingest([folder])
    assert report.files_failed == [] and report.files_new == 13
    return settings, folder


@pytest.fixture
def settings(library: tuple[Settings, Path]) -> Settings:
    return library[0]


@pytest.fixture
def corpus(library: tuple[Settings, Path]) -> Path:
    return library[1]


def names(citations: list[Citation]) -> list[str]:
    return [Path(c.source).stem for c in citations]


def test_made_up_part_number_is_found_by_bm25_where_vectors_miss(settings: Settings, corpus: Path) -> None:
    searcher = Searcher(settings)
    assert "maintenance" not in names(searcher.search("QX-7731-B", 5, mode="vector"))
    assert names(searcher.search("QX-7731-B", 5, mode="keyword"))[0] == "maintenance"
    assert names(searcher.search("QX-7731-B", 5))[0] == "maintenance"


def test_paraphrase_is_found_by_vectors_where_bm25_misses(settings: Settings, corpus: Path) -> None:
    searcher = Searcher(settings)
    question = "How do I stop my pet from chewing furniture?"
    assert "puppies" not in names(searcher.search(question, 10, mode="keyword"))
    assert names(searcher.search(question, 5, mode="vector"))[0] == "puppies"
    assert "puppies" in names(searcher.search(question, 3))


def test_citations_point_at_the_right_pdf_page(settings: Settings, corpus: Path) -> None:
    [best] = Searcher(settings).search("how often should I descale the coffee machine", 1)
    assert (Path(best.source).name, best.page) == ("manual.pdf", 3)
    assert best.source == str(corpus / "manual.pdf") and "descaling solution" in best.text
    assert best.score > 0 and best.char_start == 0 and best.char_end == len(best.text)
    assert best.to_json(1) == {"rank": 1, "score": round(best.score, 6), "source": best.source, "page": 3,
                               "text": best.text}


def test_hybrid_results_are_deduplicated_and_ranked(settings: Settings, corpus: Path) -> None:
    results = Searcher(settings).search("replacement gasket specification", 10)
    assert len({(c.source, c.text) for c in results}) == len(results) == 10
    assert [c.score for c in results] == sorted((c.score for c in results), reverse=True)


def test_retriever_returns_nodes_with_citation_metadata(settings: Settings, corpus: Path) -> None:
    retriever = HybridRetriever(Searcher(settings), top_k=2)
    nodes = retriever.retrieve(QueryBundle("descaling the steam wand"))
    assert len(nodes) == 2
    assert nodes[0].node.metadata["source"] == str(corpus / "manual.pdf") and nodes[0].node.metadata["page"] == 3
    assert nodes[0].score >= nodes[1].score > 0


def test_empty_library_and_empty_query_return_nothing(settings: Settings, tmp_path: Path) -> None:
    assert Searcher(load_settings(data_dir=tmp_path / "empty")).search("anything", 5) == []
    assert Searcher(settings).search("   ", 5) == []


def _passages(names: str) -> dict[str, Citation]:
    return {n: Citation(f"/docs/{n}.txt", None, f"passage {n}", 0.0, chunk_id=n) for n in names}


def test_reciprocal_rank_fusion_gives_the_hand_worked_order() -> None:
    """Worked by hand with k = 60:
    a = 1/61 + 1/62 = 0.032522, c = 1/63 + 1/61 = 0.032266, b = 1/62 = 0.016129,
    e = 1/63 = 0.015873, d = 1/64 = 0.015625. Agreeing lists beat a lone first place."""
    p = _passages("abcde")
    fused = reciprocal_rank_fusion([[p["a"], p["b"], p["c"], p["d"]], [p["c"], p["a"], p["e"]]])
    assert [c.chunk_id for c in fused] == ["a", "c", "b", "e", "d"]
    assert [round(c.score, 6) for c in fused] == [0.032522, 0.032266, 0.016129, 0.015873, 0.015625]


def test_reciprocal_rank_fusion_counts_a_passage_once_per_list_and_keeps_ties_in_first_seen_order() -> None:
    """x tops list 1 (1/61 = 0.016393); y is second in both (2/62 = 0.032258); z tops list 2 (0.016393).
    The repeat of y inside list 1 (same file, same text) earns nothing."""
    p = _passages("xyz")
    fused = reciprocal_rank_fusion([[p["x"], p["y"], p["y"]], [p["z"], p["y"]]])
    assert [(c.chunk_id, round(c.score, 6)) for c in fused] == [("y", 0.032258), ("x", 0.016393), ("z", 0.016393)]


def test_weighted_fusion_follows_the_weights() -> None:
    """List 1 weighted 0.5: a = 0.5/61 = 0.008197, b = 0.5/62 = 0.008065; list 2 weighted 1: c = 1/61 = 0.016393."""
    p = _passages("abc")
    fused = reciprocal_rank_fusion([[p["a"], p["b"]], [p["c"]]], weights=[[0.5, 0.5], [1.0]])
    assert [(c.chunk_id, round(c.score, 6)) for c in fused] == [("c", 0.016393), ("a", 0.008197), ("b", 0.008065)]


def test_query_terms_drop_stop_words() -> None:
    assert query_terms("How do I replace the QX-7731-B gasket?") == {"replace", "qx", "7731", "b", "gasket"}


def test_decisiveness_and_list_weights() -> None:
    assert decisiveness([10.0]) == 1.0  # a lone hit stands out completely
    assert decisiveness([10.0, 9.0, 9.0, 9.0, 8.0, 7.0]) == pytest.approx(0.2)
    assert decisiveness([]) == 0.0
    # keyword: a lone hit, decisiveness 1; vector: (0.6 - 0.58) / 0.6 = 1/30; weights 2·1/(31/30) and 2·(1/30)/(31/30)
    assert list_weights([10.0], [0.6, 0.59, 0.59, 0.58, 0.58]) == pytest.approx((1.935484, 0.064516), abs=1e-6)
    assert list_weights([5.0, 5.0, 5.0, 5.0, 5.0], [0.5, 0.5, 0.5, 0.5, 0.5]) == (1.0, 1.0)


def test_unknown_terms_are_the_query_words_no_chunk_contains(settings: Settings) -> None:
    searcher = Searcher(settings)
    assert searcher.unknown_terms("descaling the steam wand") == UnknownTerms(0.0, False)  # stems like the text
    assert searcher.unknown_terms("descale the submarine") == UnknownTerms(0.5, False)  # an everyday word
    assert searcher.unknown_terms("submarine propeller torque") == UnknownTerms(1.0, False)
    assert searcher.unknown_terms("the of and") == UnknownTerms(0.0, False)  # only stop words: nothing to judge by
    assert searcher.unknown_terms("descale it with pyinstaller") == UnknownTerms(0.5, True)  # a name it lacks
    assert searcher.unknown_terms("espresso") == UnknownTerms(0.0, False)  # a name it has


def test_a_question_about_words_the_library_lacks_loses_relevance(settings: Settings) -> None:
    from docmind.agent.citations import TurnPassages
    from docmind.agent.tools import DocumentSearch

    def scores(question: str, term_penalty: float, name_penalty: float) -> list[float]:
        search = DocumentSearch(Searcher(settings), TurnPassages(), question, min_relevance=float("-inf"),
                                unknown_term_penalty=term_penalty, unknown_name_penalty=name_penalty)
        return [p.score for p in search.search(question)]

    named = "How do I descale the machine with pandas?"  # "pandas", a name: 1 of 3 terms unknown
    plain = scores(named, 0.0, 0.0)
    assert plain and scores(named, 0.3, 0.0) == pytest.approx([score - 0.1 for score in plain])
    assert scores(named, 0.3, 0.2) == pytest.approx([score - 0.3 for score in plain])
    everyday = "How do I descale the machine on a submarine?"  # "submarine", an everyday word: no name penalty
    assert scores(everyday, 0.3, 0.2) == pytest.approx([score - 0.1 for score in scores(everyday, 0.0, 0.0)])


def test_a_question_of_several_sentences_is_split_into_its_parts() -> None:
    assert question_parts("My puppy chews the sofa legs. How often should I descale the espresso machine?") == [
        "My puppy chews the sofa legs.", "How often should I descale the espresso machine?"]
    assert question_parts("How often should I descale the espresso machine?") == []
    assert question_parts("Thanks! How often should I descale it?") == []  # "Thanks!" names nothing to search


def test_each_part_s_ranking_is_fused_with_the_whole_question_s() -> None:
    """k = 30. The whole question ranks a then b: a = 1/31 = 0.032258, b = 1/32 = 0.03125. Both parts put b
    first: b gains 2 · 0.5/31 = 0.032258, so b = 0.063508 leads; with part weight 0 the whole question's order stays."""
    p = _passages("ab")
    found = Candidates(None, [p["a"], p["b"]], [], parts=[Candidates(None, [p["b"]], []), Candidates(None, [p["b"]], [])])
    searcher = Searcher.__new__(Searcher)  # fuse reads no database
    fused = searcher.fuse(found, 2, Fusion(per_document=0))
    assert [(c.chunk_id, round(c.score, 6)) for c in fused] == [("b", 0.063508), ("a", 0.032258)]
    assert [c.chunk_id for c in searcher.fuse(found, 2, Fusion(per_document=0, part_weight=0.0))] == ["a", "b"]


def test_a_two_part_question_finds_the_answer_to_each_part(settings: Settings) -> None:
    searcher = Searcher(settings)
    question = "My puppy keeps chewing the sofa legs. How often should I descale the espresso machine?"
    top = searcher.search(question, 2)
    assert set(names(top)) == {"puppies", "manual"}
    assert searcher.query_embedding.cache_info().misses == 3  # the question and each of its two sentences
