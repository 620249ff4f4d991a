"""Thinking and answer-fast turns on a model that always thinks (a Qwen3-4B-Thinking-2507-like template on the
tiny real Qwen3), through ``load_model_handle`` and the process-wide runtime: the prompts and budgets that
reach the engine, and the thought the budget leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmind.agent.chat import ChatService, load_model_handle
from docmind.agent.events import Done
from docmind.config import load_settings
from docmind.model.thinking import BUDGET_CLOSING, EMPTY_THOUGHT, THINKING_SECONDS
from tests.agent.conftest import run_turn
from tests.fixtures.plan_record import record_plan
from tests.fixtures.thinking_model import build_always_thinking_model

BUDGET = 3


@pytest.fixture
def recorded(tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for the always-thinking model with a small budget, and the handle of every request its engine
    is given."""
    from docmind.model.runtime import get_runtime, unload

    model = build_always_thinking_model(tiny_model_dir, tmp_path / "thinking-model")
    settings = load_settings(data_dir=data_dir, model_path=model, quantization="none", max_new_tokens=120,
                             thinking_budget=BUDGET)
    engine = get_runtime(settings).engine
    handles = []
    submit = engine.submit
    monkeypatch.setattr(engine, "submit", lambda request: handles.append(submit(request)) or handles[-1])
    yield settings, handles
    unload()


async def test_a_thinking_turn_is_cut_at_the_budget_and_still_answers(recorded) -> None:
    settings, handles = recorded
    service = ChatService(settings, model_loader=load_model_handle)
    events = await run_turn(service, None, "What does the report say?")
    done = events[-1]
    assert isinstance(done, Done), events[-3:]
    assert handles and all(h.request.prompt.endswith("<|im_start|>assistant\n<think>\n") for h in handles)
    assert all(h.request.thinking_budget == BUDGET for h in handles)
    assert all(h.result.thinking_tokens == BUDGET and h.result.thinking_cut for h in handles)
    assert done.thinking.endswith(BUDGET_CLOSING.split("</think>")[0].strip())
    answer = handles[-1].result.text.split(BUDGET_CLOSING, 1)[1].strip()  # what the model wrote after the cut
    assert answer and answer in done.answer


async def test_answer_fast_on_an_always_thinking_model_skips_the_thought(recorded) -> None:
    settings, handles = recorded
    service = ChatService(settings, model_loader=lambda s: load_model_handle(s, enable_thinking=False))
    events = await run_turn(service, None, "What does the report say?")
    done = events[-1]
    assert isinstance(done, Done), events[-3:]
    assert handles and all(h.request.prompt.endswith("<|im_start|>assistant\n" + EMPTY_THOUGHT) for h in handles)
    assert all(h.result.thinking_tokens == 0 and not h.result.thinking_cut for h in handles)
    assert done.thinking == ""


async def test_the_default_budget_is_twenty_seconds_at_the_speed_measured_on_this_computer(
        tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a plan recorded in ``models/plan.json`` (decode 40 tok/s), the default budget is 20 s of it: 800
    tokens, on the handle and on every request a turn sends."""
    from docmind.model.runtime import get_runtime, unload

    model = build_always_thinking_model(tiny_model_dir, tmp_path / "thinking-model")
    settings = load_settings(data_dir=data_dir, model_path=model, quantization="auto", tune_min_weights_bytes=0,
                             max_new_tokens=40)
    record_plan(settings, [("float32", "none", 40.0)])
    try:
        runtime = get_runtime(settings)
        assert runtime.loaded.measured_plan.decode_tok_s == 40.0 and runtime.loaded.plan.dtype == "float32"
        assert load_model_handle(settings).llm.thinking_budget == round(THINKING_SECONDS * 40.0) == 800
        handles = []
        submit = runtime.engine.submit
        monkeypatch.setattr(runtime.engine, "submit", lambda request: handles.append(submit(request)) or handles[-1])
        events = await run_turn(ChatService(settings, model_loader=load_model_handle), None, "What does it say?")
        assert isinstance(events[-1], Done) and handles
        assert all(h.request.thinking_budget == 800 for h in handles)
    finally:
        unload()
