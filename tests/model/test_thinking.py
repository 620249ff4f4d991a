"""The <think> parser on streamed text: split tags, missing open tag, unterminated thinking."""

from __future__ import annotations

import pytest

from docmind.model.thinking import ThinkParser, split_thinking


def _stream(chunks: list[str], in_thinking: bool = False) -> tuple[str, str, list[tuple[str, str]]]:
    parser = ThinkParser(in_thinking=in_thinking)
    pieces = [p for chunk in chunks for p in parser.feed(chunk)] + parser.finish()
    return parser.thinking, parser.answer, [(p.kind, p.text) for p in pieces]


def test_tags_split_across_tokens() -> None:
    thinking, answer, pieces = _stream(["<th", "ink>\nLet me", " look</t", "hink", ">\n\nPage", " 3."])
    assert (thinking, answer) == ("Let me look", "Page 3.")
    assert pieces[0] == ("thinking", "Let me") and pieces[-1] == ("answer", " 3.")
    assert all("<" not in text for _, text in pieces)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_any_token_boundaries_give_the_same_split(size: int) -> None:
    text = "<think>\nweigh a < b and </th not yet\n</think>\n\nThe answer is <b>bold</b>."
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    thinking, answer, _ = _stream(chunks)
    assert thinking == "weigh a < b and </th not yet\n"
    assert answer == "The answer is <b>bold</b>."


def test_missing_open_tag_when_the_prompt_opened_it() -> None:
    thinking, answer, _ = _stream(["I should search", ".\n</think>", "\n\nFound it."], in_thinking=True)
    assert (thinking, answer) == ("I should search.\n", "Found it.")
    assert split_thinking("reasoning</think>\n\nAnswer") == ("reasoning", "Answer")


def test_unterminated_thinking_stays_thinking() -> None:
    thinking, answer, pieces = _stream(["<think>", "still going", " <"])
    assert (thinking, answer) == ("still going <", "")
    assert {kind for kind, _ in pieces} == {"thinking"}


def test_no_thinking_at_all() -> None:
    assert split_thinking("Just the answer < 5") == ("", "Just the answer < 5")
    assert split_thinking("<think>\n\n</think>\n\nAnswer") == ("", "Answer")
