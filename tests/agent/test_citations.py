"""How passages are shown: as numbered tool observations and as a search-result answer."""

from __future__ import annotations

from docmind.agent.citations import Passage, format_passages, search_result_answer


def _passage(number: int, text: str) -> Passage:
    return Passage(number=number, source=f"/docs/file{number}.md", page=None, text=text, score=0.5)


def test_search_result_keeps_markdown_starts_as_plain_text():
    passages = [_passage(1, "# Intro\nThe handbook."), _passage(2, "> quoted"), _passage(3, "1. first step")]
    lines = search_result_answer(passages, "Search result").splitlines()[2:]
    assert lines == [r"- \# Intro The handbook. [1]", r"- \> quoted [2]", r"- 1\. first step [3]"]


def test_long_passages_are_cut_at_a_word():
    answer = search_result_answer([_passage(1, "word " * 200)], "Search result")
    bullet = answer.splitlines()[2]
    assert bullet.endswith("… [1]") and len(bullet) < 420
    observation = format_passages([_passage(1, "alpha\n\nbeta")])
    assert observation.splitlines()[1] == "alpha beta"
