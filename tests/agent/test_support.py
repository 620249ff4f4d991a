"""The support check of cited sentences: a scripted LLM over a real library, and the check on its own."""

from __future__ import annotations

from docmind.agent.citations import SUPPORT_THRESHOLD, TurnPassages, check_support
from docmind.agent.events import Done
from docmind.storage.sessions import ChatLog
from tests.agent.conftest import run_turn, scripted_service

SEARCH = 'Thought: I should search.\nAction: search_documents\nAction Input: {"query": "revenue growth third quarter"}'
ASK_JSON_KEYS = {"session", "answer", "thinking", "citations", "prompt_tokens", "completion_tokens", "seconds"}


async def _answer(settings, answer: str) -> tuple[Done, object]:
    service, _ = scripted_service(settings, SEARCH, f"Thought: I can answer.\nAnswer: {answer}")
    events = await run_turn(service, None, "How much did revenue grow?")
    done = events[-1]
    assert isinstance(done, Done) and done.mode == "agent"
    return done, service


async def test_a_correct_citation_is_supported(settings_with_library):
    done, service = await _answer(settings_with_library, "Revenue grew by 12 percent in the third quarter [1].")
    report = done.to_json()
    assert ASK_JSON_KEYS <= set(report)  # the DESIGN.md keys stay
    [citation] = report["citations"]
    assert citation["source"].endswith("report.md")
    assert citation["supported"] is True and citation["support"] >= SUPPORT_THRESHOLD
    assert report["citation_coverage"] == 1.0 and report["unsupported"] == []
    stored = ChatLog(service.db).messages(done.session_id)[-1]
    assert stored.extra["citations"][0]["supported"] is True and stored.extra["citation_coverage"] == 1.0


async def test_a_citation_of_the_wrong_passage_is_flagged(settings_with_library):
    done, service = await _answer(settings_with_library, "Tomatoes need full sun and regular watering [1].")
    report = done.to_json()
    [citation] = report["citations"]
    assert citation["source"].endswith("report.md")  # passage 1 is the report, which says nothing of tomatoes
    assert citation["supported"] is False and citation["support"] < SUPPORT_THRESHOLD
    assert report["citation_coverage"] == 0.0
    [claim] = report["unsupported"]
    assert claim["text"] == "Tomatoes need full sun and regular watering [1]." and claim["numbers"] == [1]
    assert claim["note"] == "not found in source [1]"
    assert ChatLog(service.db).messages(done.session_id)[-1].extra["unsupported"] == report["unsupported"]


async def test_a_passage_number_never_retrieved_is_flagged_and_removed(settings_with_library):
    done, _ = await _answer(settings_with_library,
                            "Revenue grew by 12 percent [1]. The company opened an office in Lisbon [9].")
    report = done.to_json()
    assert done.answer == "Revenue grew by 12 percent [1]. The company opened an office in Lisbon."
    assert [c["number"] for c in report["citations"]] == [1] and report["citations"][0]["supported"] is True
    [claim] = report["unsupported"]
    assert claim["text"] == "The company opened an office in Lisbon." and claim["numbers"] == [9]
    assert claim["note"] == "cites [9], which the search did not return"
    assert report["citation_coverage"] == 0.5


def _passages(*texts: str) -> TurnPassages:
    turn = TurnPassages()
    for number, text in enumerate(texts, start=1):
        turn.add(f"/docs/{number}.md", None, text, 0.5)
    return turn


def test_each_clause_is_checked_against_its_own_passage():
    turn = _passages("The warranty covers repairs for three years.", "Returns are accepted within 30 days.")
    report = check_support("The warranty covers repairs [1], and returns are accepted within 30 days [2].", turn)
    assert [(c.numbers, c.supported) for c in report.claims] == [((1,), True), ((2,), True)]
    swapped = check_support("The warranty covers repairs [2], and returns are accepted within 30 days [1].", turn)
    assert [c.supported for c in swapped.claims] == [False, False]
    assert swapped.score(1) < SUPPORT_THRESHOLD and swapped.score(2) < SUPPORT_THRESHOLD


def test_uncited_sentences_are_not_flagged_but_lower_the_coverage():
    turn = _passages("The warranty covers repairs for three years.")
    report = check_support("Hello there. The warranties cover repairs for 3 years. [1]", turn)
    assert report.unsupported == []  # the greeting carries no citation, so nothing to flag
    assert [c.text for c in report.claims] == ["The warranties cover repairs for 3 years. [1]"]  # [1] after the stop
    assert report.claims[0].supported  # "warranties" matches "warranty"; "3" is the only word missing
    assert report.coverage == 0.5


def test_words_are_matched_whatever_their_case_and_endings():
    turn = _passages("QUARTERLY revenue grew strongly.")
    assert check_support("Revenue grew in the quarter [1].", turn).claims[0].score == 1.0


def test_ask_json_reports_support_and_coverage_and_keeps_its_keys(settings_with_library):
    """``docmind ask --json`` in a real process (no model: a search result, quoted, so fully supported)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DOCMIND_DATA_DIR": str(settings_with_library.data_dir), "HF_HUB_OFFLINE": "1"}
    env.pop("DOCMIND_MODEL_PATH", None)
    question = "How much did revenue grow?"
    result = subprocess.run([sys.executable, "-m", "docmind", "ask", "--new-session", "--json", question],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert ASK_JSON_KEYS <= set(report) and report["mode"] == "search"
    assert report["citations"] and all(c["supported"] is True and c["support"] == 1.0 for c in report["citations"])
    assert report["unsupported"] == [] and 0 < report["citation_coverage"] <= 1
