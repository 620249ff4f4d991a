"""How turns and saved sessions become Chatbot messages: thinking collapsed, sources numbered and openable."""

from __future__ import annotations

from docmind.agent.citations import Passage
from docmind.agent.events import (
    AnswerReset,
    AnswerToken,
    Citations,
    Done,
    Notice,
    ThinkingToken,
    ToolCalled,
    TurnFailed,
    TurnStarted,
)
from docmind.storage.sessions import STATUS_INTERRUPTED, StoredMessage
from docmind.agent.citations import TurnPassages, check_support
from docmind.ui.transcript import INTERRUPTED, TurnView, history_from_stored
from docmind.ui.viewer import viewer_url

PASSAGE = Passage(1, "/docs/report.pdf", 3, "Revenue grew 12% in 2025.", 0.9)


def _thoughts(messages: list[dict]) -> dict[str, dict]:
    return {m["metadata"]["title"]: m for m in messages if m.get("metadata")}


def test_a_streaming_turn_shows_pending_thinking_then_the_answer_with_sources() -> None:
    view = TurnView(question="How did revenue change?")
    view.apply(TurnStarted("s1", "How did revenue change?"))
    view.apply(ThinkingToken("Let me search. "))
    thinking = _thoughts(view.messages())["Thinking… 0 s"]  # titled from its first token, with its seconds
    assert thinking["metadata"]["status"] == "done" and thinking["content"] == "Let me search."  # closed

    view.apply(ToolCalled("search_documents", {"query": "revenue"}))
    view.apply(AnswerToken("Draft"))
    view.apply(AnswerReset())
    view.apply(AnswerToken("Revenue grew 12% [1]."))
    view.apply(Citations([PASSAGE]))
    view.apply(Done("s1", "Revenue grew 12% [1].", "Let me search.", [PASSAGE], 40, 9, 1.0))
    messages = view.messages()
    thoughts = _thoughts(messages)
    assert messages[0] == {"role": "user", "content": "How did revenue change?"}
    assert thoughts["Thinking"]["metadata"]["status"] == "done" and "duration" in thoughts["Thinking"]["metadata"]
    assert thoughts["Searched your documents"]["content"] == "search_documents: revenue"
    answer, sources = [m["content"] for m in messages if m["role"] == "assistant" and not m.get("metadata")]
    link = viewer_url("/docs/report.pdf", 3, PASSAGE.text).replace("&", "&amp;")  # the viewer at the passage
    assert answer == f'Revenue grew 12% [<a class="docmind-cite" href="{link}" title="Open report.pdf · page 3 at the passage">1</a>].'
    assert "<summary>Sources (1): report.pdf · page 3</summary>" in sources  # one click opens the passages
    assert f'href="{link}"' in sources and ">[1] report.pdf · page 3</a>**" in sources
    assert "> Revenue grew 12% in 2025." in sources
    assert "/docs/report.pdf" in sources
    assert view.result() | {"citations": []} == {
        "session": "s1", "answer": "Revenue grew 12% [1].", "thinking": "Let me search.", "citations": [],
        "notices": [], "mode": "agent", "prompt_tokens": 40, "completion_tokens": 9, "done": True, "error": "",
    }  # unchecked answers (Done without a support report) add no keys


def test_a_claim_its_source_does_not_support_is_marked_with_a_tooltip() -> None:
    passages = TurnPassages()
    passage = passages.add("/docs/report.pdf", 3, "Revenue grew 12% in 2025.", 0.9)
    answer = "Revenue grew 12% in 2025 [1]. Tomatoes love the sun [1]."
    view = TurnView(question="q")
    view.apply(Done("s1", answer, "", [passage], support=check_support(answer, passages)))
    shown = [m["content"] for m in view.messages() if m["role"] == "assistant"][0]
    first, second, after = shown.split("</a>].")
    assert "docmind-unsupported" not in first + second  # the supported sentence carries no marker
    assert after.startswith(' <span class="docmind-unsupported" title="Not found in source [1]">⚠')
    result = view.result()
    assert result["citations"][0]["supported"] is False and result["citation_coverage"] == 0.5
    assert result["unsupported"][0]["text"] == "Tomatoes love the sun [1]."
    stored = history_from_stored([StoredMessage("assistant", answer, extra={"citations": result["citations"],
                                                                             "unsupported": result["unsupported"]})])
    assert stored[0]["content"] == shown  # the same marker after a reload
    assert "⚠ the answer's words were not found in this passage" in stored[1]["content"]


def test_notices_show_while_streaming_and_errors_and_stops_are_visible() -> None:
    view = TurnView(question="q")
    view.apply(Notice("no-model", "No model yet."))
    assert "_No model yet._" in view.messages()[-1]["content"]
    view.stopped = True
    view.error = "The question is empty: type a question first."
    content = view.messages()[-1]["content"]
    assert INTERRUPTED in content and "⚠ The question is empty" in content


def test_a_saved_session_reloads_with_thinking_sources_and_interruptions() -> None:
    citation = {"number": 1, "source": "/docs/notes.md", "page": None, "text": "Call Ada."}
    stored = [
        StoredMessage("user", "Who do I call?"),
        StoredMessage("assistant", "Call Ada [1].", thinking="Looking.", extra={"citations": [citation]}),
        StoredMessage("user", "And then?"),
        StoredMessage("assistant", "Then", status=STATUS_INTERRUPTED),
    ]
    history = history_from_stored(stored)
    thoughts = _thoughts(history)
    assert thoughts["Thinking"]["metadata"]["status"] == "done" and thoughts["Thinking"]["content"] == "Looking."
    plain = [m["content"] for m in history if not m.get("metadata")]
    assert "<summary>Sources (1): notes.md</summary>" in plain.pop(2) and "> Call Ada." in history[3]["content"]
    assert plain[1].startswith('Call Ada [<a class="docmind-cite" href="/docmind/view/') and plain[1].endswith("</a>].")
    assert plain[:1] + plain[2:] == ["Who do I call?", "And then?", f"Then\n\n{INTERRUPTED}"]


def test_a_failed_turn_shows_its_error_and_a_regenerated_turn_learns_its_question() -> None:
    view = TurnView(question="")
    assert view.messages()[0]["metadata"]["title"] == "Working…"  # no empty question bubble before the start
    view.apply(TurnStarted("s1", "Title", "Asked again?"))
    view.apply(AnswerToken("Half an ans"))
    view.apply(TurnFailed("s1", "The model could not answer: The engine was shut down."))
    assert view.messages()[0] == {"role": "user", "content": "Asked again?"}
    assert view.messages()[-1]["content"] == "Half an ans\n\n⚠ The model could not answer: The engine was shut down."
    assert view.result()["error"] and not view.result()["done"] and view.result()["session"] == "s1"


def test_an_answer_that_cites_nothing_still_names_the_documents_it_consulted() -> None:
    view = TurnView(question="Who founded the company?")
    view.apply(Done("s1", "The documents do not say.", "", [], 40, 9, 1.0,
                    consulted=["/docs/report.pdf", "/docs/notes.md"]))
    *_, consulted = view.messages()
    assert consulted["content"] == "Documents consulted (2), none cited in this answer: report.pdf, notes.md"

    stored = StoredMessage(role="assistant", content="The documents do not say.",
                           extra={"citations": [], "consulted": ["/docs/report.pdf"]})
    assert history_from_stored([stored])[-1]["content"] == (
        "Documents consulted (1), none cited in this answer: report.pdf")
    assert history_from_stored([StoredMessage(role="assistant", content="Hi.")])[-1]["content"] == "Hi."
