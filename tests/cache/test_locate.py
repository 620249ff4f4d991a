"""Finding a cited passage in a page's text that was extracted differently."""

from __future__ import annotations

from docmind.cache.locate import locate

PASSAGE = "The office shall define the maintenance schedule for each turbine."


def _texts(parts: list[str], ranges: list[tuple[int, int, int]]) -> str:
    return "".join(parts[part][start:end] for part, start, end in ranges)


def test_an_exact_passage_is_found_in_one_part():
    page = f"Header\n{PASSAGE}\nFooter"
    found = locate([page], PASSAGE)
    assert found.exact and _texts([page], found.ranges) == PASSAGE


def test_whitespace_hyphenation_ligatures_and_case_differ_on_the_page():
    items = ["THE ofﬁce shall de-", "ﬁne the mainte-", "nance", " ", "schedule  for each", "turbine.", "Next line"]
    found = locate(items, PASSAGE)
    assert found.exact
    assert [part for part, _, _ in found.ranges] == [0, 1, 2, 4, 5]  # the lone space item holds no letter
    assert _texts(items, found.ranges).replace("-", "").replace("ﬁ", "fi").lower().startswith("the office shall define")
    assert found.ranges[-1] == (5, 0, 8)  # "turbine." with its full stop


def test_a_passage_running_onto_the_next_page_gets_its_best_overlap():
    page = ["Some other words first.", "The office shall define the maintenance schedule"]
    found = locate(page, PASSAGE + " It continues on the next page with many more words of text.")
    assert found.found and not found.exact
    assert _texts(page, found.ranges).startswith("The office shall define the maintenance")


def test_a_passage_that_is_not_on_the_page_is_not_found():
    assert not locate(["Tomatoes need full sun and regular watering."], PASSAGE).found
    assert not locate([""], PASSAGE).found
    assert not locate(["anything"], "  ").found
