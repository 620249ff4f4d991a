"""Bounded thinking on the tiny real Qwen3 with an always-thinking (Qwen3-4B-Thinking-2507-like) template:
the engine cuts a thought at its budget with Qwen's closing sentence, answer-fast prompts skip the thought,
and the default budget follows the decode speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core.llms import ChatMessage

from docmind.config import load_settings
from docmind.model.engine import GenerationEngine, GenerationRequest
from docmind.model.llm import EngineLLM, chat_prompt
from docmind.model.thinking import (
    BUDGET_CLOSING,
    EMPTY_THOUGHT,
    MAX_THINKING_TOKENS,
    MIN_THINKING_TOKENS,
    THINKING_SECONDS,
    ThinkParser,
    thinking_budget,
    thinking_closing,
)
from tests.fixtures.thinking_model import build_always_thinking_model

QUESTIONS = ["What is on page 3?", "Summarise the report", "Who wrote it", "Find the quick brown fox"]
ANSWER_TOKENS = 6


@pytest.fixture(scope="module")
def thinking_loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from docmind.model.hardware import LoadPlan
    from docmind.model.loading import load_model

    path = build_always_thinking_model(tiny_model_dir, tmp_path_factory.mktemp("thinking") / "model")
    settings = load_settings(data_dir=tmp_path_factory.mktemp("data"), model_path=path, quantization="none")
    return load_model(settings, plan=LoadPlan("cpu", "float32", "none", "exact comparisons in tests"))


@pytest.fixture(scope="module")
def thinking_engine(thinking_loaded):
    engine = GenerationEngine(thinking_loaded.model, thinking_loaded.tokenizer, prefix_cache_bytes=0)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def prompts(thinking_loaded) -> list[str]:
    return [chat_prompt(thinking_loaded.tokenizer, [ChatMessage(role="user", content=q)]) for q in QUESTIONS]


def _greedy(prompt: str, budget: int | None, n: int = 40) -> GenerationRequest:
    return GenerationRequest(prompt, max_new_tokens=n, temperature=0.0, stop_token_ids=(-1,), thinking_budget=budget)


def _think_ids(engine: GenerationEngine) -> set[int]:
    return set(engine.tokenizer.convert_tokens_to_ids(["<think>", "</think>"]))


def test_the_always_thinking_template_opens_the_thought_and_answer_fast_closes_it(thinking_loaded) -> None:
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hi")]
    thinking = chat_prompt(thinking_loaded.tokenizer, messages)
    fast = chat_prompt(thinking_loaded.tokenizer, messages, enable_thinking=False)
    assert thinking.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert fast == thinking[: -len("<think>\n")] + EMPTY_THOUGHT
    assert fast.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("budget", [1, 5])
def test_the_thought_is_cut_after_exactly_budget_tokens_then_the_answer_follows(thinking_engine, prompts,
                                                                             budget) -> None:
    free = thinking_engine.generate(_greedy(prompts[0], None))
    assert not _think_ids(thinking_engine) & set(free.token_ids[:budget]), "the model itself did not close it"
    closing = thinking_engine.tokenize(BUDGET_CLOSING)
    handle = thinking_engine.submit(_greedy(prompts[0], budget, n=budget + len(closing) + ANSWER_TOKENS))
    streamed = "".join(handle)
    result = handle.wait(60)

    assert result.token_ids[:budget] == free.token_ids[:budget], "the thought is the model's own"
    assert list(result.token_ids[budget:budget + len(closing)]) == closing
    assert len(result.token_ids) == budget + len(closing) + ANSWER_TOKENS, "the answer is generated after it"
    assert result.thinking_tokens == budget and result.thinking_cut
    assert streamed == result.text and BUDGET_CLOSING in result.text

    parser = ThinkParser(in_thinking=True)  # the prompt opened the thought
    parser.feed(streamed)
    parser.finish()
    assert parser.thinking == thinking_engine.tokenizer.decode(free.token_ids[:budget]).lstrip() + BUDGET_CLOSING[
        : -len("</think>\n\n")]
    assert parser.answer and parser.answer == result.text.split("</think>")[-1].lstrip()


def test_budget_zero_closes_the_thought_before_any_thinking(thinking_engine, prompts) -> None:
    result = thinking_engine.generate(_greedy(prompts[1], 0, n=16))
    closing = thinking_engine.tokenize(thinking_closing(0))
    assert list(result.token_ids[:len(closing)]) == closing
    assert result.thinking_tokens == 0 and result.thinking_cut
    assert (prompts[1] + result.text).endswith(EMPTY_THOUGHT + result.text[len(thinking_closing(0)):])
    assert "</think>" not in result.text[len(thinking_closing(0)):]


def test_a_prompt_outside_a_thought_is_never_cut(thinking_engine, thinking_loaded) -> None:
    fast = chat_prompt(thinking_loaded.tokenizer, [ChatMessage(role="user", content=QUESTIONS[2])],
                       enable_thinking=False)
    free = thinking_engine.generate(_greedy(fast, None, n=12))
    budgeted = thinking_engine.generate(_greedy(fast, 2, n=12))
    assert budgeted.token_ids == free.token_ids
    assert budgeted.thinking_tokens == 0 and not budgeted.thinking_cut


def test_rows_with_and_without_budgets_in_one_batch_keep_their_own_tokens(thinking_loaded, prompts) -> None:
    budgets = [None, 3, 0, 7]
    requests = [_greedy(p, b, n=80) for p, b in zip(prompts, budgets)]
    engine = GenerationEngine(thinking_loaded.model, thinking_loaded.tokenizer, prefix_cache_bytes=0)
    try:
        singles = [engine.generate(r) for r in requests]
        handles = engine.submit_many(requests)
        batched = [h.wait(60) for h in handles]
    finally:
        engine.shutdown()
    assert engine.peak_batch == len(requests), "all rows decoded together"
    for budget, single, result in zip(budgets, singles, batched):
        assert result.token_ids == single.token_ids
        assert result.thinking_cut == (budget is not None)
        if budget is not None:
            assert result.thinking_tokens == budget
    assert batched[0].thinking_tokens == 80 and not batched[0].thinking_cut  # the unbounded row thought on


def test_a_negative_budget_is_refused(thinking_engine, prompts) -> None:
    with pytest.raises(ValueError, match="thinking budget"):
        thinking_engine.submit(_greedy(prompts[0], -1))


def test_engine_llm_passes_its_budget_and_reports_the_cut(thinking_engine) -> None:
    llm = EngineLLM(thinking_engine, temperature=0.0, max_new_tokens=80, thinking_budget=4)
    response = llm.chat([ChatMessage(role="user", content=QUESTIONS[3])])
    assert response.raw["thinking_tokens"] == 4 and response.raw["thinking_cut"]
    text = response.message.content
    assert text.startswith("<think>\n") and text.count("</think>") == 1
    fast = llm.chat([ChatMessage(role="user", content=QUESTIONS[3])], enable_thinking=False)
    assert fast.raw["thinking_tokens"] == 0 and not fast.raw["thinking_cut"]


def test_the_default_budget_is_about_twenty_seconds_of_decoding(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    measured = thinking_budget(settings, decode_tok_s=25.0)
    assert measured.tokens == round(THINKING_SECONDS * 25.0) and measured.measured
    assert measured.seconds == pytest.approx(THINKING_SECONDS)
    assert measured.label == "thinks for up to about 20 s (500 tokens)"
    assert thinking_budget(settings, decode_tok_s=1.0).tokens == MIN_THINKING_TOKENS
    assert thinking_budget(settings, decode_tok_s=1000.0).tokens == MAX_THINKING_TOKENS

    estimate = thinking_budget(settings)  # the default 4B model in bf16, not measured
    assert not estimate.measured and 0.5 < estimate.decode_tok_s < 5
    int4 = thinking_budget(load_settings(data_dir=tmp_path, quantization="int4-weight"))
    assert int4.decode_tok_s == pytest.approx(4 * estimate.decode_tok_s)


def test_the_setting_wins_over_the_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCMIND_THINKING_BUDGET", "300")
    budget = thinking_budget(load_settings(data_dir=tmp_path), decode_tok_s=10.0)
    assert budget.tokens == 300 and budget.seconds == pytest.approx(30.0)
    monkeypatch.setenv("DOCMIND_THINKING_BUDGET", "0")
    assert thinking_budget(load_settings(data_dir=tmp_path)).label == "answers without thinking"
    monkeypatch.setenv("DOCMIND_THINKING_BUDGET", "-5")
    from docmind.config import SettingsError

    with pytest.raises(SettingsError, match="thinking_budget"):
        load_settings(data_dir=tmp_path)
